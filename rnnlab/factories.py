"""What a config builds: the task, the model against the task's spec (seeded), and the optimizer
and learning-rate schedule of ``train``.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Optional

import torch

from .config import Experiment, TrainConfig
from .limits import allocation_guard, check_memory
from .models import build_model
from .models.base import Model
from .runtime import seed_everything
from .tasks import TASKS
from .tasks.base import Task


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
