"""The pieces of a training step and the loop's state: gradient clipping (the pre-clip norm
recorded), cutting the graph between BPTT windows, steps per epoch, what a training checkpoint holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from rnnlab.config.schema import TrainConfig
from rnnlab.errors import RunDirError
from rnnlab.tasks.base import Task


def require_training_state(ckpt: dict[str, Any], path: Path) -> None:
    """A checkpoint to resume from holds the whole training state, not just weights (best.pt)."""
    missing = [key for key in ("model", "optimizer", "trainer", "rng") if key not in ckpt]
    if missing:
        raise RunDirError(path, f"not a full training checkpoint (no {', '.join(missing)}); "
                          "only last.pt can be resumed from")
    for key in ("trainer", "config"):
        if key in ckpt and not isinstance(ckpt[key], dict):
            raise RunDirError(path, f"checkpoint is corrupted ('{key}' is not a mapping)")


def epoch_steps(cfg: TrainConfig, task: Task) -> int:
    """Optimizer steps per epoch: ``steps_per_epoch``, else ``tokens_per_epoch`` rounded up to
    whole steps, else one pass over the training data."""
    if cfg.steps_per_epoch is not None:
        return cfg.steps_per_epoch
    if cfg.tokens_per_epoch is not None:
        return math.ceil(cfg.tokens_per_epoch / task.tokens_per_step(cfg.batch_size))
    return task.steps_per_epoch(cfg.batch_size)


def detach_state(state: Any) -> Any:
    """Cut the graph between BPTT windows while keeping the values."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)


def better(value: float, best: Optional[float], mode: str, min_delta: float = 0.0) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best: Optional[float] = None
    best_epoch: Optional[int] = None
    bad_epochs: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    stopped: Optional[str] = None  # why training ended before its epochs: time budget, max_steps
    schedule_trace: list[int] = field(default_factory=list)  # a timed schedule's advance per step
    schedule_position: int = 0  # sum(schedule_trace)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EpochProgress:
    """The unfinished epoch: what its metrics row accumulates and the recurrent state carried
    between batches, so a mid-epoch checkpoint resumes to exactly the same row."""

    loss_sum: torch.Tensor  # float64, on the device: summing there avoids a sync per step
    steps: int = 0
    norms: list[torch.Tensor] = field(default_factory=list)
    samples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    carry: Any = None

    @classmethod
    def start(cls, device: torch.device) -> "EpochProgress":
        return cls(torch.zeros((), dtype=torch.float64, device=device))

    def to_state(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum, "steps": self.steps, "norms": torch.stack(self.norms),
                "samples": self.samples, "tokens": self.tokens, "seconds": self.seconds,
                "carry": self.carry}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "EpochProgress":
        return cls(**{**state, "norms": list(state["norms"].unbind())})


def clip_grad_norm(params: list[torch.Tensor], max_norm: Optional[float]) -> torch.Tensor:
    """The total 2-norm of the parameters' gradients before clipping; with ``max_norm``, the
    gradients are scaled in place to at most that norm. ``torch.nn.utils.clip_grad_norm_``'s
    arithmetic (the same results, bit for bit) in a few fused list kernels, without its per-call
    grouping: at small batches, where a whole step takes well under a millisecond, that halves what
    clipping costs. Gradients on several devices or dtypes go to torch's general version."""
    grads = [p.grad for p in params if p.grad is not None]
    if len({(g.device, g.dtype) for g in grads}) != 1:
        return torch.nn.utils.clip_grad_norm_(params, max_norm or float("inf"))  # inf: measure only
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if max_norm:
        torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))
    return total


CHECKPOINT_FORMAT = 2  # 2: config, history, mid-epoch progress and the data pass are included
