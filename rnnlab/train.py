"""One training loop for every task.

The loop owns what is not the model's business: device, seeding, optimizer and scheduler, gradient
clipping (with the pre-clip norm recorded), validation in eval mode under no_grad, the best
checkpoint, early stopping, divergence, and the run directory. Tasks provide batches and the loss.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from . import __version__, identity, runs
from .budget import STOP_EARLY, STOP_EPOCHS, Replay, StepPlan, load_replay
from .config import Experiment, TrainConfig
from .errors import ConfigError, DataError, RnnlabError, RunDirError
from .limits import allocation_guard, check_memory, check_threads
from .models import build_model
from .models.base import Model
from .precision import Precision, check_precision, isa_summary, resolve_precision
from .progress import Reporter
from .tasks import TASKS
from .tasks.base import Batch, Task

# ----------------------------------------------------------------------------- environment


def resolve_device(name: str, where: str = "train.device") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(where, "'cuda' requested but no CUDA device is available "
                          "(use 'auto' or 'cpu')")
    return torch.device(name)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def set_threads(threads: Optional[int], warn: bool = True) -> int:
    """Torch's CPU threads: ``threads``, capped (with a warning) to the cores available."""
    n = check_threads(threads, available_cores(), warn)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    env: dict[str, Any] = {
        "device": str(device),
        "cpu": cpu_model(),
        **isa_summary(),
        "threads": threads,
        "versions": {"rnnlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["versions"]["cuda"] = torch.version.cuda
        env["versions"]["cudnn"] = torch.backends.cudnn.version()
    return env


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG a run draws from, in types ``torch.load(weights_only=True)`` accepts."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "data": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- building


def build_task(exp: Experiment, device: torch.device, run_dir: Optional[Path] = None) -> Task:
    return TASKS.get(exp.task.name)(exp, device, run_dir)


def build(exp: Experiment, device: torch.device, run_dir: Optional[Path] = None
          ) -> tuple[Task, Model]:
    """Task, then the model against the task's spec (seeded, so init is reproducible). The
    model's memory is estimated (on the meta device) and refused before it is allocated when it
    cannot fit; an allocation that fails anyway is one line too."""
    with allocation_guard(f"the task's data (task {exp.task.name})"):
        task = build_task(exp, device, run_dir)
    check_memory(exp, task, device, draw=run_dir is None)
    with allocation_guard(f"the model (model {exp.model.name})"):
        return task, init_model(exp, task, device)


def init_model(exp: Experiment, task: Task, device: torch.device) -> Model:
    """The model as a run of ``exp`` starts: initialised from ``train.seed`` alone."""
    seed_everything(exp.train.seed)
    model = build_model(exp.model, task.spec, where="config").to(device)
    model.flatten_parameters()
    return model


def make_optimizer(cfg: TrainConfig, model: Model) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer in ("adam", "adamw"):
        adam = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        try:  # fused: one kernel per step instead of a loop over tensors (on CPU since torch 2.4)
            return adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        except RuntimeError:  # an older torch or a device without the fused kernel
            return adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


OPTIMIZERS = {
    "adam": "Adam (torch.optim.Adam); train.lr, train.weight_decay",
    "adamw": "AdamW, decoupled weight decay; train.lr, train.weight_decay",
    "sgd": "SGD with momentum; train.lr, train.momentum, train.weight_decay",
}
PER_STEP_SCHEDULES = ("cosine", "onecycle")
SCHEDULERS = {
    "none": "constant learning rate",
    "step": "multiply lr by gamma every step_size epochs (per epoch)",
    "cosine": "cosine decay over all steps to lr * min_lr_ratio (per step); warmup_steps: linear "
              "warm-up first",
    "onecycle": "one-cycle: warm up to lr, then anneal (per step); pct_start, div_factor, final_div_factor",
    "plateau": "ReduceLROnPlateau on the task's validation metric (per epoch); factor, patience",
}


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                   mode: str = "min") -> tuple[Optional[Any], bool]:
    """(scheduler, steps_per_batch): step/none/plateau are per epoch, cosine/onecycle per batch.
    ``mode``: whether the task's validation metric (which plateau watches) is better lower or higher."""
    s = cfg.scheduler
    if s.name == "none":
        return None, False
    if s.name == "step":
        step_size = s.step_size or max(1, cfg.epochs // 3)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size, s.gamma or 0.1), False
    if s.name == "plateau":  # stepped with the validation metric after each epoch (Trainer.fit)
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if mode == "max" else "min", factor=s.factor or 0.1,
            patience=2 if s.patience is None else s.patience), False
    if s.name == "cosine" and s.warmup_steps:
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(warmup_cosine, warmup=s.warmup_steps, total=max(1, total_steps),
                                         floor=s.min_lr_ratio or 0.0)), True
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, total_steps), eta_min=cfg.lr * (s.min_lr_ratio or 0.0)), True
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=max(2, total_steps), pct_start=s.pct_start or 0.3,
        div_factor=s.div_factor or 25.0, final_div_factor=s.final_div_factor or 1e4), True


def warmup_cosine(step: int, warmup: int, total: int, floor: float) -> float:
    """The lr multiplier at optimizer step ``step`` (0-based) of ``cosine`` with warm-up: linear from
    1/warmup to 1 over ``warmup`` steps, then the cosine from 1 down to ``floor`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def load_weights(model: Model, state: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's state dict; one from another model shape is an error naming the file."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise RunDirError(path, f"checkpoint does not match the run's model ({detail[:150]})") from None
    model.flatten_parameters()


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


def evaluate(task: Task, model: Model, split: str, batch_size: int) -> dict[str, float]:
    """Task metrics on a split, in eval mode (dropout off) under no_grad; restores the mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return task.evaluate(model, split, batch_size)
    finally:
        model.train(was_training)


def better(value: float, best: Optional[float], mode: str, min_delta: float = 0.0) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


class Diverged(RnnlabError):
    """The loss or the gradient became non-finite (or exploded): status ``diverged``. The run
    directory (``where``) and what was kept are filled in when the run is closed."""

    def __init__(self, epoch: int, step: int, reason: str, hint: str) -> None:
        self.epoch, self.step = epoch, step
        super().__init__(None, f"training diverged at epoch {epoch}, step {step}: {reason}; {hint}")


class Interrupted(Exception):
    """Raised in the loop when a stop was requested (SIGINT/SIGTERM) after a step finished and
    the checkpoint was saved; re-raised by ``finish_run`` with ``run_dir`` and ``signum`` set."""

    def __init__(self) -> None:
        super().__init__("interrupted")
        self.run_dir: Optional[Path] = None
        self.signum: Optional[int] = None
        self.saved: Optional[str] = None  # where the checkpoint stands, in words
        self.note: Optional[str] = None  # without a run directory: what happened, in words


# ----------------------------------------------------------------------------- the trainer


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


class Trainer:
    def __init__(self, exp: Experiment, task: Task, model: Model, run_dir: Path,
                 reporter: Reporter, device: torch.device, threads: int,
                 precision: Optional[str] = None) -> None:
        self.exp, self.cfg = exp, exp.train
        self.task, self.model, self.run_dir = task, model, run_dir
        self.reporter, self.device, self.threads = reporter, device, threads
        self.steps_per_epoch = epoch_steps(self.cfg, task)
        # a fixed epoch length (steps or tokens) chains passes over the data instead of one pass
        self.chained = self.cfg.steps_per_epoch is not None or self.cfg.tokens_per_epoch is not None
        self.optimizer = make_optimizer(self.cfg, model)
        replay: Optional[Replay] = load_replay(exp.to_dict(), self.cfg.replay) if self.cfg.replay else None
        self.plan = StepPlan(self.cfg, self.steps_per_epoch,
                             self.cfg.scheduler.name in PER_STEP_SCHEDULES, replay)
        self.scheduler, self.per_step = make_scheduler(self.cfg, self.optimizer, self.plan.schedule_steps,
                                                       task.spec.mode)
        self.plateau = self.cfg.scheduler.name == "plateau"
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.eval_batch_size = self.cfg.eval_batch_size or 4 * self.cfg.batch_size
        self.state = TrainState()
        self.progress = EpochProgress.start(device)
        self.stop_requested = False
        # the current pass over the training data: its order is drawn from ``generator``, whose
        # state at the pass start is kept so a resume can replay the pass to where it was
        self._pass: Optional[Iterator[Batch]] = None
        self.pass_rng: Optional[torch.Tensor] = None
        self.pass_batches = 0
        self.check_every = 1 if device.type == "cpu" else self.cfg.log_every
        self.amp = Precision(precision or resolve_precision(self.cfg.precision, device, model), device)
        # (batch, state) -> (loss, state); DistributedTrainer routes it through DDP
        self.compute_loss: Callable[[Batch, Any], tuple[torch.Tensor, Any]] = \
            lambda batch, state: task.loss(model, batch, state)
        self.tensorboard: Optional[Any] = None  # a tblog.TensorBoardLog when logging.tensorboard
        self.mlflow: Optional[Any] = None  # a mlflow_log.LiveRun when logging.mlflow
        self.step_norms = torch.zeros(0)  # the last epoch's per-step pre-clip norms (for loggers)
        self.saved: Optional[str] = None  # what last.pt holds, for messages
        self._saved_at = time.monotonic()
        self._identity: Optional[dict[str, Any]] = None

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        s, p = self.state, self.progress
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.exp.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "trainer": {"epoch": s.epoch, "step": s.step, "best": s.best, "best_epoch": s.best_epoch,
                        "bad_epochs": s.bad_epochs, "train_seconds": s.train_seconds,
                        "stopped_early": s.stopped_early, "stopped": s.stopped,
                        "schedule_trace": list(s.schedule_trace),
                        "schedule_position": s.schedule_position},
            "history": list(s.history),
            "progress": p.to_state() if p.steps else None,
            "data_pass": ({"rng": self.pass_rng, "batches": self.pass_batches}
                          if self._pass is not None else None),
            "rng": rng_state(self.generator),
            "scaler": self.amp.state_dict(),
            "identity": self.identity(),
        }

    def identity(self) -> dict[str, Any]:
        """The run's id and config hash, carried by every checkpoint (see ``rnnlab.identity``)."""
        if self._identity is None:
            self._identity = identity.make_identity(self.run_dir, self.exp.to_dict())
        return self._identity

    def restore(self, ckpt: dict[str, Any], path: Path) -> None:
        """Continue exactly where ``checkpoint()`` (read from ``path``) left off."""
        require_training_state(ckpt, path)
        load_weights(self.model, ckpt["model"], path)
        try:
            self._restore_state(ckpt)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise RunDirError(path, f"checkpoint does not fit this run's optimizer, scheduler or data "
                              f"({type(exc).__name__}: {str(exc).strip()[:120]})") from None
        self.saved = self.position()

    def _restore_state(self, ckpt: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        for key, value in ckpt["trainer"].items():
            setattr(self.state, key, value)
        self.state.history = list(ckpt.get("history") or [])
        progress = ckpt.get("progress")
        self.progress = (EpochProgress.from_state(progress) if progress
                         else EpochProgress.start(self.device))
        data_pass = ckpt.get("data_pass")
        if data_pass is not None:  # replay the pass's order from its start, skipping done batches
            self.generator.set_state(data_pass["rng"])
            self._pass = self.new_pass()
            for _ in range(data_pass["batches"]):
                if next(self._pass, None) is None:
                    raise ValueError("the training data has fewer batches than when it was saved")
            self.pass_batches = data_pass["batches"]
        # after the replay, which may have drawn from any RNG: every RNG exactly as it was saved
        set_rng_state(ckpt["rng"], self.generator)
        self.amp.load_state_dict(ckpt.get("scaler"))

    def save_last(self) -> None:
        runs.save_torch(self.run_dir / runs.CHECKPOINTS / "last.pt", self.checkpoint())
        self.saved = self.position()
        self._saved_at = time.monotonic()

    def position(self) -> str:
        """Where training stands, in words: ``after epoch 2`` or ``at step 7 of epoch 3``."""
        p = self.progress
        return (f"at step {p.steps} of epoch {self.state.epoch + 1}" if p.steps
                else f"after epoch {self.state.epoch}")

    def request_stop(self) -> None:
        """Stop after the current step (with a checkpoint); called from a signal handler."""
        self.stop_requested = True

    def should_stop(self, step: int) -> bool:
        """Whether to stop after ``step`` (hook: DistributedTrainer makes all processes agree)."""
        return self.stop_requested

    def checkpoint_due(self) -> bool:
        """``train.checkpoint_every``: by optimizer steps (counted over the whole run, so resumes
        keep the same schedule) or by wall time since the last save."""
        every = self.cfg.checkpoint_every
        if every is None:
            return False
        if every.steps is not None:
            return self.state.step % every.steps == 0
        assert every.minutes is not None
        return time.monotonic() - self._saved_at >= every.minutes * 60

    def save_best(self, val: dict[str, float]) -> None:
        runs.save_torch(self.run_dir / runs.CHECKPOINTS / "best.pt",
                        {"model": self.model.state_dict(), "epoch": self.state.epoch, "val": val,
                         "identity": self.identity()})

    def save_epoch(self, row: dict[str, Any]) -> None:
        runs.append_jsonl(self.run_dir / runs.METRICS, row)
        if self.tensorboard is not None:
            self.tensorboard.epoch(row, self.step_norms)
        if self.mlflow is not None:
            self.mlflow.epoch(row)

    # ------------------------------------------------------------------ hooks (see distributed.py)
    def validate(self) -> dict[str, float]:
        return evaluate(self.task, self.model, "val", self.eval_batch_size)

    def reduce_totals(self, loss_sum: torch.Tensor, samples: int, tokens: int
                      ) -> tuple[torch.Tensor, int, int]:
        """An epoch's totals over every process (one process: as they are)."""
        return loss_sum, samples, tokens

    # ------------------------------------------------------------------ the loop
    def new_pass(self) -> Iterator[Batch]:
        self.pass_rng, self.pass_batches = self.generator.get_state(), 0
        return iter(self.task.train_batches(self.cfg.batch_size, self.generator))

    def batches(self) -> Iterator[Batch]:
        """The rest of this epoch's batches: one pass over the data, or with ``steps_per_epoch``
        (or ``tokens_per_epoch``) set, that many steps from chained passes (the next epoch
        continues the pass)."""
        remaining = self.steps_per_epoch - self.progress.steps if self.chained else None
        while remaining is None or remaining > 0:
            fresh = self._pass is None
            if self._pass is None:
                self._pass = self.new_pass()
            batch = next(self._pass, None)
            if batch is None:
                self._pass = None
                if fresh:
                    raise DataError(f"task {self.exp.task.name}", "the training split yields no batches")
                if remaining is None:
                    return
                continue
            self.pass_batches += 1
            if remaining is not None:
                remaining -= 1
            yield batch

    def clip(self) -> torch.Tensor:
        """Clip as configured; the total gradient norm before clipping."""
        norm = clip_grad_norm(self.params, self.cfg.clip_grad_norm)
        if self.cfg.clip_grad_value:
            torch.nn.utils.clip_grad_value_(self.params, self.cfg.clip_grad_value)
        return norm

    def train_epoch(self) -> dict[str, Any]:
        """Train the rest of the epoch (all of it unless resumed mid-epoch); its metrics row."""
        s, task, model, opt, p = self.state, self.task, self.model, self.optimizer, self.progress
        epoch = s.epoch + 1
        model.train()
        self.reporter.epoch_start(epoch, self.cfg.epochs, self.steps_per_epoch)
        start = time.perf_counter() - p.seconds
        for batch in self.batches():
            i = p.steps + 1
            if batch.extra.get("reset_state"):  # e.g. a new pass of sequential BPTT
                p.carry = None
            with self.amp.autocast():
                loss, carry = self.compute_loss(batch, p.carry if task.spec.stateful else None)
            for param in self.params:  # opt.zero_grad(set_to_none=True), without its ~40 us of Python
                param.grad = None
            self.amp.backward(loss)
            self.amp.unscale_(opt)  # clipping and the recorded norm see the true gradients
            norm = self.clip()
            if i % self.check_every == 0:
                self.check_finite(loss, norm, epoch, i)
            self.amp.step(opt)
            s.step += 1
            elapsed = s.train_seconds + (time.perf_counter() - start)
            advance, stopping = self.plan_step(elapsed)
            if self.per_step:
                for _ in range(advance):
                    self.scheduler.step()
            p.carry = detach_state(carry)
            p.steps = i
            p.loss_sum.add_(loss.detach(), alpha=batch.size)
            p.norms.append(norm.detach())
            p.samples += batch.size
            p.tokens += task.tokens(batch)
            if self.reporter.wants_step(i):
                self.reporter.step(i, loss.item(), time.perf_counter() - start)
            stop = self.should_stop(i)
            if stop or self.checkpoint_due():
                self.check_finite(loss, norm, epoch, i)  # never save a diverged state
                p.seconds = time.perf_counter() - start
                self.save_last()
                if stop:
                    raise Interrupted()
            if stopping is not None:  # the rest of the epoch is not trained: close it as it is
                s.stopped = stopping
                break
        if self.scheduler is not None and not self.per_step and not self.plateau:
            self.scheduler.step()
        seconds = time.perf_counter() - start
        loss_sum, samples, tokens = self.reduce_totals(p.loss_sum, p.samples, p.tokens)
        self.step_norms = torch.stack(p.norms).double()
        all_norms = self.amp.taken(self.step_norms)
        train_loss = loss_sum / max(samples, 1)
        # catches what sparse per-step checks (on GPU) missed; the mean, as max_loss is per step
        self.check_finite(train_loss, all_norms.max(), epoch, p.steps)
        max_norm = self.cfg.clip_grad_norm
        self.progress = EpochProgress.start(self.device)
        return {
            "train_loss": train_loss.item(),
            "grad_norm_mean": all_norms.mean().item(),
            "grad_norm_max": all_norms.max().item(),
            "clip_frac": (all_norms > max_norm).double().mean().item() if max_norm else 0.0,
            "steps": len(p.norms),
            "train_seconds": seconds,
            "samples_per_s": samples / seconds,
            "tokens_per_s": tokens / seconds,
        }

    def plan_step(self, elapsed: float) -> tuple[int, Optional[str]]:
        """After optimizer step ``state.step``, ``elapsed`` seconds into training: how many steps
        the per-step schedule advances (recorded when it follows the budget) and why training
        stops now, if it does."""
        s, plan = self.state, self.plan
        advance = plan.advance(s.step, s.schedule_position, elapsed) if self.per_step else 1
        stopping = plan.stop_reason(s.step, elapsed)
        if plan.budget is not None:  # decided by the clock: every process must follow the same one
            advance, stopping = self.agree(advance, stopping)
        if plan.timed:
            s.schedule_trace.append(advance)
            s.schedule_position += advance
        return advance, stopping

    def agree(self, advance: int, stopping: Optional[str]) -> tuple[int, Optional[str]]:
        """Hook: DistributedTrainer makes every process take the main process's decision."""
        return advance, stopping

    def check_finite(self, loss: torch.Tensor, norm: torch.Tensor, epoch: int, step: int) -> None:
        value = float(loss.detach())
        limit = self.cfg.max_loss
        reason = None
        if not math.isfinite(value):
            reason = f"loss became {value}"
        elif not math.isfinite(float(norm)) and self.amp.scaler is None:  # fp16 overflow: step skipped
            reason = f"gradient norm became {float(norm)}"
        elif limit is not None and value > limit:
            reason = f"loss {value:.4g} exceeded train.max_loss={limit:g}"
        if reason:
            clip = self.cfg.clip_grad_norm
            hint = (f"try a lower train.lr (now {self.cfg.lr:g}) or "
                    + (f"a smaller train.clip_grad_norm (now {clip:g})" if clip
                       else "gradient clipping (train.clip_grad_norm, e.g. 1.0)")
                    + (", or raise train.max_loss" if "max_loss" in reason else ""))
            raise Diverged(epoch, step, reason, hint)

    def fit(self) -> TrainState:
        s, cfg, spec = self.state, self.cfg, self.task.spec
        while s.epoch < cfg.epochs and not s.stopped_early and s.stopped is None:
            if self.should_stop(0):  # asked between epochs: last.pt already holds this state
                raise Interrupted()
            train = self.train_epoch()
            t0 = time.perf_counter()
            val = self.validate()
            s.epoch += 1
            s.train_seconds += train["train_seconds"]
            row: dict[str, Any] = {"epoch": s.epoch, "step": s.step,
                                   "lr": self.optimizer.param_groups[0]["lr"], **train}
            row.update({f"val_{k}": v for k, v in val.items()})
            row["seconds"] = train["train_seconds"] + (time.perf_counter() - t0)
            metric = val[spec.metric]
            if self.plateau:  # the next epoch's lr (the row keeps the lr this epoch trained with)
                self.scheduler.step(metric)
            es = cfg.early_stopping
            if better(metric, s.best, spec.mode, es.min_delta if es else 0.0):
                s.best, s.best_epoch, s.bad_epochs = metric, s.epoch, 0
                self.save_best(val)
            else:
                s.bad_epochs += 1
                if es is not None and s.bad_epochs >= es.patience:
                    s.stopped_early = True
            # best.pt, then last.pt (which holds the history), then the metrics line: a crash
            # between any two leaves files a resume from last.pt makes consistent again
            s.history.append(row)
            self.save_last()
            self.save_epoch(row)
            self.reporter.epoch_end(row, spec.metric)
        return s


# ----------------------------------------------------------------------------- whole runs


def train_run(exp: Experiment, runs_dir: Path, reporter: Reporter) -> Path:
    """Validate, build, create the run directory, train, test, write the summary. Everything that
    can fail because of user input fails before the run directory exists. Under torchrun (more
    than one process) the run is trained data-parallel by ``rnnlab.distributed``."""
    from . import distributed

    if distributed.launched():
        return distributed.train_run(exp, runs_dir, reporter)
    from .signals import Stopped

    runs.check_runs_dir(runs_dir)
    device = resolve_device(exp.train.device)
    check_runtime(exp, device)
    threads = set_threads(exp.train.threads)
    task, model = build(exp, device)
    precision = check_precision(exp.train.precision, device, model)
    try:
        run_dir = open_run(exp, runs_dir, task)
        return start_run(Trainer(exp, task, model, run_dir, reporter, device, threads, precision))
    except BaseException as exc:  # failed or stopped before training began: leave no directory
        runs.discard_unfinished_runs()
        if isinstance(exc, Stopped):
            stop = Interrupted()
            stop.signum, stop.note = exc.signum, f"{exc} during set-up; no run directory was left"
            raise stop from None
        raise


def check_runtime(exp: Experiment, device: torch.device) -> None:
    """Checks that need the device, optional packages or other runs, before anything is written
    (those that need the built model: ``check_precision`` with it)."""
    from .mlflow_log import check_mlflow
    from .tblog import require_tensorboard

    check_precision(exp.train.precision, device)
    if exp.train.replay:
        load_replay(exp.to_dict(), exp.train.replay)
    if exp.config.logging.tensorboard:
        require_tensorboard()
    check_mlflow(exp.config.logging.mlflow)


def open_run(exp: Experiment, runs_dir: Path, task: Task) -> Path:
    """A new run directory holding the resolved config and the task's artifacts."""
    run_dir = runs.create_run_dir(runs_dir, exp.name)
    runs.write_text(run_dir / runs.CONFIG, exp.to_yaml())
    task.save_artifacts(run_dir)
    return run_dir


def start_run(trainer: Trainer, extra: Optional[dict[str, Any]] = None) -> Path:
    """Write the initial summary (plus ``extra`` facts), open the loggers, train and finish,
    holding the run's lock throughout."""
    from .mlflow_log import open_live
    from .tblog import open_tensorboard

    with runs.RunLock(trainer.run_dir):
        summary = base_summary(trainer.exp, trainer.run_dir, trainer.task, trainer.model,
                               trainer.device, trainer.threads)
        summary.update(extra or {})
        summary["precision"] = trainer.amp.name
        if trainer.plan.replay is not None:
            summary["replay_of"] = str(trainer.plan.replay.run_dir)
        runs.write_json(trainer.run_dir / runs.SUMMARY, summary)
        trainer.tensorboard = open_tensorboard(trainer.exp, trainer.run_dir)
        trainer.mlflow = open_live(trainer.exp.config.logging.mlflow, trainer.run_dir, summary,
                                   trainer.exp.to_dict())
        trainer.reporter.run_start(trainer.run_dir, summary)
        return finish_run(trainer, summary)


def finish_run(trainer: Trainer, summary: dict[str, Any]) -> Path:
    """Train to the end, then test the best checkpoint and close the run (the caller holds the
    run's lock). A stop, a divergence or a crash closes the run with that status and re-raises."""
    from .signals import GracefulStop, Stopped, deferred

    run_dir = trainer.run_dir
    trained = False  # set inside GracefulStop: a signal after it finds the final stage handled
    try:
        with GracefulStop(trainer.request_stop) as stop:
            runs.setup_done(run_dir)  # from here on the run directory stays, whatever happens
            try:
                trainer.fit()
            except Interrupted as exc:
                close_run(trainer, summary, "interrupted")
                exc.run_dir, exc.signum, exc.saved = run_dir, stop.signum, trainer.saved
                raise
            except Diverged as exc:
                exc.where = str(run_dir)
                exc.what += (f"; kept the last good checkpoint ({trainer.saved})" if trainer.saved
                             else "; no checkpoint had been saved yet")
                summary["error"] = exc.line()
                close_run(trainer, summary, "diverged")
                raise
            except KeyboardInterrupt:  # only when no handler could be installed (not the main thread)
                close_run(trainer, summary, "interrupted")
                raise
            except BaseException as exc:
                summary["error"] = f"{type(exc).__name__}: {exc}"
                close_run(trainer, summary, "failed")
                raise
            trained = True
        final_outputs(trainer, summary)
    except Stopped as exc:  # training is complete and saved; the test evaluation is redone on resume
        if not trained:
            raise
        summary["interrupted"] = (f"{exc} during the final test evaluation (training is complete; "
                                  f"rnnlab train --resume {run_dir} evaluates it again)")
        close_run(trainer, summary, "interrupted")
        stop_exc = Interrupted()
        stop_exc.run_dir, stop_exc.signum, stop_exc.saved = run_dir, exc.signum, trainer.saved
        raise stop_exc from None
    except BaseException as exc:
        if not trained:
            raise
        summary["error"] = (exc.line() if isinstance(exc, RnnlabError)
                            else f"{type(exc).__name__}: {exc}")
        close_run(trainer, summary, "failed")
        raise
    with deferred():  # a signal now would find the run complete: it waits until it is written
        close_run(trainer, summary, "completed")
    trainer.reporter.run_end(run_dir, summary)
    return run_dir


def final_outputs(trainer: Trainer, summary: dict[str, Any]) -> None:
    """After training: the best checkpoint on the test split (exactly as ``rnnlab eval`` does
    it), the plots and the task's other outputs."""
    run_dir = trainer.run_dir
    best_path = run_dir / runs.CHECKPOINTS / "best.pt"
    best = runs.load_checkpoint(best_path, trainer.device)
    identity.check(best, best_path, run_dir, trainer.exp.to_dict(), identity.foreign_allowed())
    load_weights(trainer.model, best["model"], best_path)
    summary["test"] = evaluate(trainer.task, trainer.model, "test", trainer.eval_batch_size)
    summary["best_val"] = best["val"]
    if trainer.exp.config.logging.plots:
        trainer.reporter.plots(write_plots(trainer.exp, trainer.task, trainer.model,
                                           trainer.state.history, run_dir))
    trainer.model.eval()  # task outputs beyond figures (e.g. text samples), written even without plots
    with torch.no_grad():
        trainer.task.final_outputs(trainer.model, run_dir)


def close_run(trainer: Trainer, summary: dict[str, Any], status: str) -> Path:
    s = trainer.state
    summary.update({
        "status": status,
        "epochs_completed": s.epoch,
        "best_epoch": s.best_epoch,
        "stopped_early": s.stopped_early,
        "steps": s.step,
        "train_seconds": round(s.train_seconds, 3),
        "finished": runs.now_iso(),
    })
    if status == "completed":
        summary["stopped"] = s.stopped or (STOP_EARLY if s.stopped_early else STOP_EPOCHS)
    runs.write_json(trainer.run_dir / runs.SUMMARY, summary)
    if trainer.tensorboard is not None:
        trainer.tensorboard.close()
    if trainer.mlflow is not None:
        trainer.mlflow.close(summary)
    return trainer.run_dir


def base_summary(exp: Experiment, run_dir: Path, task: Task, model: Model, device: torch.device,
                 threads: int) -> dict[str, Any]:
    return {
        "status": "running",
        "run_id": run_dir.name,
        "run_uuid": uuid.uuid4().hex,  # unique even when two runs get the same id (see identity.py)
        "name": exp.name,
        "task": exp.task.name,
        "model": exp.model.name,
        "metric": task.spec.metric,
        "mode": task.spec.mode,
        "test": {},
        "best_epoch": None,
        "train_seconds": 0.0,
        "parameters": sum(p.numel() for p in model.parameters()),
        "precision": resolve_precision(exp.train.precision, device, model),
        "seed": exp.train.seed,
        "determinism": determinism(exp, device),
        **environment(device, threads),
        "data": task.describe(),
        "command": " ".join(["rnnlab", *sys.argv[1:]]) if sys.argv else "",
        "started": runs.now_iso(),
    }


def determinism(exp: Experiment, device: torch.device) -> dict[str, Any]:
    """The seeds and settings a run's reproducibility rests on, and what to expect from them."""
    if device.type == "cpu":
        expect = "bit-reproducible for this seed, thread count and torch build (resume included)"
    elif getattr(exp.model, "dropout", 0):
        expect = "not bit-reproducible: cuDNN RNN kernels with dropout are nondeterministic"
    else:
        expect = "close but not guaranteed bit-exact (cuDNN/cuBLAS may pick nondeterministic kernels)"
    return {
        "seed": exp.train.seed,
        "data_seed": getattr(exp.data, "seed", None),
        "expect": expect,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def write_plots(exp: Experiment, task: Task, model: Model, history: list[dict[str, Any]],
                run_dir: Path) -> list[Path]:
    """Every figure of a run: the learning curves from its metrics, then the task's own from the
    model (in eval mode under no_grad). Training and ``rnnlab plot`` both call this."""
    from .plots import learning_curves

    paths = [learning_curves(history, run_dir / runs.PLOTS / "learning_curves.png",
                             task.spec.metric, exp.train.clip_grad_norm)]
    model.eval()
    with torch.no_grad():
        paths += task.plots(model, run_dir, history)
    return paths


# ----------------------------------------------------------------------------- evaluation of runs


def load_run(run: str | os.PathLike[str], checkpoint: str = "best", device: str = "cpu",
             allow_foreign: Optional[bool] = None) -> tuple[Path, Experiment, Task, Model, dict[str, Any]]:
    """Rebuild task and model from a run directory's own files. A checkpoint of another run is
    refused unless ``allow_foreign`` (default: ``--allow-foreign-checkpoint`` was given)."""
    from .config import build_experiment, read_yaml

    run_dir = runs.resolve_run(run)
    exp = build_experiment(read_yaml(run_dir / runs.CONFIG), str(run_dir / runs.CONFIG))
    summary = runs.read_summary(run_dir)
    dev = resolve_device(device, "--device")
    threads = summary.get("threads")
    set_threads(threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0
                else exp.train.threads, warn=False)
    task, model = build(exp, dev, run_dir)
    path = run_dir / runs.CHECKPOINTS / f"{checkpoint}.pt"
    ckpt = runs.load_checkpoint(path, dev)
    identity.check(ckpt, path, run_dir, exp.to_dict(),
                   identity.foreign_allowed() if allow_foreign is None else allow_foreign)
    load_weights(model, ckpt["model"], path)
    return run_dir, exp, task, model, summary


def evaluate_run(run: str | os.PathLike[str], split: str = "test", checkpoint: str = "best",
                 device: str = "cpu") -> dict[str, float]:
    _, exp, task, model, _ = load_run(run, checkpoint, device)
    batch = exp.train.eval_batch_size or 4 * exp.train.batch_size
    return evaluate(task, model, split, batch)
