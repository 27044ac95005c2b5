"""Optimizers and learning-rate schedules, as registries a plugin can add to.

An optimizer entry is ``build(params, train) -> torch.optim.Optimizer``; it reads what it needs
from the ``train`` section (``lr``, ``weight_decay``, ``momentum``). ``params`` is a list of tensors,
or torch's list of param-group dicts when the model declares parameter groups
(``Model.parameter_groups``): pass it on to the torch optimizer as it is. Every schedule scales each
group's own lr, so the groups keep their ratio. A scheduler entry is
``build(train, optimizer, total_steps, mode) -> scheduler or None`` with two attributes: ``per_step``
(stepped after every optimizer step, else after every epoch; ``plateau``-like entries, stepped with
the validation metric, set ``on_metric``) and ``options``, the ``train.scheduler.*`` keys it reads
(any other key given with it is refused, naming the field). Register your own with
``rnnlab.register_optimizer`` / ``rnnlab.register_scheduler``.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Iterable, Optional

import torch

from rnnlab.errors import ConfigError
from rnnlab.registry import OPTIMIZERS, SCHEDULERS


def optimizer_entry(name: str, description: str, options: Iterable[str] = ("lr",)
                    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an optimizer builder with the ``train.*`` keys it reads (``rnnlab list NAME``)."""
    def decorator(build: Callable[..., Any]) -> Callable[..., Any]:
        build.options = frozenset(options)  # type: ignore[attr-defined]
        return OPTIMIZERS.register(name, description)(build)
    return decorator


def scheduler_entry(name: str, description: str, options: Iterable[str] = (), per_step: bool = False,
                    on_metric: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a schedule builder with what the trainer must know about it."""
    def decorator(build: Callable[..., Any]) -> Callable[..., Any]:
        build.per_step = per_step  # type: ignore[attr-defined]
        build.on_metric = on_metric  # type: ignore[attr-defined]
        build.options = frozenset(options)  # type: ignore[attr-defined]
        return SCHEDULERS.register(name, description)(build)
    return decorator


# ----------------------------------------------------------------------------- optimizers


# Optimizer methods torch wraps for torch.compile; each wrapper imports torch._dynamo on its first call
# (seconds, more than torch itself), and rnnlab never compiles. The eager classes call the wrapped
# methods, with the grad mode the step's wrapper sets: the same arithmetic, no dynamo import.
_COMPILE_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


@functools.lru_cache(maxsize=None)
def eager(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of ``cls`` (same name) whose methods skip torch's compile wrappers."""
    body: dict[str, Any] = {name: inspect.unwrap(getattr(cls, name)) for name in _COMPILE_WRAPPED}
    raw_step = inspect.unwrap(cls.step)

    def step(self: torch.optim.Optimizer, closure: Optional[Callable[[], float]] = None) -> Any:
        with torch.set_grad_enabled(self.defaults.get("differentiable", False)):
            return raw_step(self, closure)

    body.update(step=step, __module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__)
    return type(cls.__name__, (cls,), body)


def _adam(cls: type[torch.optim.Optimizer], params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    try:  # fused: one kernel per step instead of a loop over tensors (on CPU since torch 2.4)
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)  # type: ignore[call-arg]
    except RuntimeError:  # an older torch or a device without the fused kernel
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)  # type: ignore[call-arg]


@optimizer_entry("adam", "Adam (torch.optim.Adam); train.lr, train.weight_decay", ("lr", "weight_decay"))
def adam(params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    return _adam(eager(torch.optim.Adam), params, cfg)


@optimizer_entry("adamw", "AdamW, decoupled weight decay; train.lr, train.weight_decay",
                 ("lr", "weight_decay"))
def adamw(params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    return _adam(eager(torch.optim.AdamW), params, cfg)


@optimizer_entry("sgd", "SGD with momentum; train.lr, train.momentum, train.weight_decay",
                 ("lr", "momentum", "weight_decay"))
def sgd(params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    return eager(torch.optim.SGD)(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_optimizer(cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The ``train.optimizer`` over the model's parameters: a list of tensors, or, when the model
    declares parameter groups, torch's list of groups (the first one ``default``)."""
    return OPTIMIZERS.get(cfg.optimizer, "train.optimizer")(param_groups(cfg, model), cfg)


def param_groups(cfg: Any, model: torch.nn.Module) -> list[Any]:
    """The trainable parameters, or torch param groups (``name``, ``params``, ``lr``,
    ``weight_decay``) from ``model.parameter_groups(cfg)``: ``default`` first (every parameter no
    group names, at ``train.lr`` and ``train.weight_decay``), then each non-empty declared group.
    A parameter named by two groups is a ``ConfigError``."""
    params = [p for p in model.parameters() if p.requires_grad]
    declare = getattr(model, "parameter_groups", None)
    declared = declare(cfg) if declare is not None else []
    if not declared:
        return params
    owner: dict[int, str] = {}
    groups = []
    for group in declared:
        mine = []
        for p in group.params:
            if id(p) in owner and owner[id(p)] != group.name:
                raise ConfigError("model", f"parameter groups {owner[id(p)]!r} and {group.name!r} "
                                  "both name the same parameter")
            if p.requires_grad and id(p) not in owner:
                owner[id(p)] = group.name
                mine.append(p)
        if mine:
            decay = cfg.weight_decay if group.weight_decay is None else group.weight_decay
            groups.append({"name": group.name, "params": mine, "lr": cfg.lr * group.lr_scale,
                           "weight_decay": decay})
    rest = [p for p in params if id(p) not in owner]
    default = {"name": "default", "params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay}
    return [default, *groups]


# ----------------------------------------------------------------------------- schedules


@scheduler_entry("none", "constant learning rate")
def constant(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> None:
    return None


@scheduler_entry("step", "multiply lr by gamma every step_size epochs (per epoch)", ("step_size", "gamma"))
def step(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> Any:
    s = cfg.scheduler
    return torch.optim.lr_scheduler.StepLR(optimizer, s.step_size or max(1, cfg.epochs // 3), s.gamma or 0.1)


@scheduler_entry("cosine", "cosine decay over all steps to lr * min_lr_ratio (per step); warmup_steps: "
                 "linear warm-up first", ("min_lr_ratio", "warmup_steps"), per_step=True)
def cosine(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> Any:
    s = cfg.scheduler
    if s.warmup_steps or len({g["lr"] for g in optimizer.param_groups}) > 1:
        # a multiplier of each group's own lr (CosineAnnealingLR's floor is one lr for every group)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(warmup_cosine, warmup=s.warmup_steps or 0,
                                         total=max(1, total_steps), floor=s.min_lr_ratio or 0.0))
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total_steps), eta_min=cfg.lr * (s.min_lr_ratio or 0.0))


@scheduler_entry("onecycle", "one-cycle: warm up to lr, then anneal (per step); pct_start, div_factor, "
                 "final_div_factor", ("pct_start", "div_factor", "final_div_factor"), per_step=True)
def onecycle(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> Any:
    s = cfg.scheduler
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(2, total_steps),
        pct_start=s.pct_start or 0.3, div_factor=s.div_factor or 25.0,
        final_div_factor=s.final_div_factor or 1e4)


@scheduler_entry("plateau", "ReduceLROnPlateau on the task's validation metric (per epoch); factor, "
                 "patience", ("factor", "patience"), on_metric=True)
def plateau(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> Any:
    s = cfg.scheduler
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max" if mode == "max" else "min", factor=s.factor or 0.1,
        patience=2 if s.patience is None else s.patience)


def make_scheduler(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int,
                   mode: str = "min") -> tuple[Optional[Any], bool]:
    """(scheduler, steps_per_batch). ``total_steps``: the optimizer steps a per-step schedule spans;
    ``mode``: whether the task's validation metric (which ``plateau`` watches) is better lower or higher."""
    build = SCHEDULERS.get(cfg.scheduler.name, "train.scheduler")
    return build(cfg, optimizer, total_steps, mode), bool(build.per_step)


def per_step(name: str) -> bool:
    return bool(SCHEDULERS.get(name, "train.scheduler").per_step)


def on_metric(name: str) -> bool:
    return bool(SCHEDULERS.get(name, "train.scheduler").on_metric)


def warmup_cosine(step: int, warmup: int, total: int, floor: float) -> float:
    """The lr multiplier at optimizer step ``step`` (0-based) of ``cosine`` with warm-up: linear from
    1/warmup to 1 over ``warmup`` steps, then the cosine from 1 down to ``floor`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
