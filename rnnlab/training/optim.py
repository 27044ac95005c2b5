"""Optimizers and learning-rate schedules, as registries a plugin can add to.

Each entry owns a pydantic schema of its options (``Options``, strict like every config section,
with its defaults): an optimizer's are set under ``train.optimizer_options`` (``betas``, ``eps``
...), a scheduler's beside its name in ``train.scheduler`` (``{name: step, gamma: 0.5}``). An option
the chosen entry does not have is refused, naming the field; ``rnnlab list NAME`` shows each option
with its default.

An optimizer entry is ``build(params, train) -> torch.optim.Optimizer``; it reads the shared
``train`` keys it declares (``reads``: ``lr``, ``weight_decay``, ``momentum``) and its own options
from ``train.optimizer_settings`` (its ``Options`` with the defaults filled in). ``params`` is a list
of tensors, or torch's list of param-group dicts when the model declares parameter groups
(``Model.parameter_groups``): pass it on to the torch optimizer as it is. Every schedule scales each
group's own lr, so the groups keep their ratio. A scheduler entry is
``build(train, optimizer, total_steps, mode) -> scheduler or None``; ``train.scheduler.<option>``
is the option in effect (the default when not given). It has ``per_step`` (stepped after every
optimizer step, else after every epoch; ``plateau``-like entries, stepped with the validation metric,
set ``on_metric``). Register your own with ``rnnlab.register_optimizer`` /
``rnnlab.register_scheduler`` (``schema=``: your options).
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Annotated, Any, Callable, Iterable, Optional

import torch
from pydantic import Field, create_model

from rnnlab.config.schema import Strict
from rnnlab.errors import ConfigError
from rnnlab.registry import OPTIMIZERS, SCHEDULERS


class OptimizerOptions(Strict):
    """Base of an optimizer's own options (``train.optimizer_options``); none by default. A schema
    may define ``check(self, train)`` raising ``ValueError("optimizer_options.KEY: why")`` for a
    rule that involves the shared ``train`` keys."""


class SchedulerOptions(Strict):
    """Base of a scheduler's options (the keys beside ``name`` in ``train.scheduler``)."""


class _Legacy(SchedulerOptions):
    """The ``train.scheduler`` keys of rnnlab's closed schema, for plugins registered with
    ``options=(...)`` names and no schema (they apply their own defaults to None)."""

    step_size: Optional[int] = Field(None, gt=0)
    gamma: Optional[float] = Field(None, gt=0, le=1)
    min_lr_ratio: Optional[float] = Field(None, ge=0, le=1)
    warmup_steps: Optional[int] = Field(None, ge=0)
    factor: Optional[float] = Field(None, gt=0, lt=1)
    patience: Optional[int] = Field(None, ge=0)
    pct_start: Optional[float] = Field(None, gt=0, lt=1)
    div_factor: Optional[float] = Field(None, gt=0)
    final_div_factor: Optional[float] = Field(None, gt=0)


def legacy_schema(name: str, options: Iterable[str]) -> type[SchedulerOptions]:
    """A schema for a scheduler registered by option names only: each known key with rnnlab's old
    constraints, any other as an optional value; every default None."""
    fields: dict[str, Any] = {}
    for key in options:
        info = _Legacy.model_fields.get(key)
        fields[key] = (info.annotation, info) if info is not None else (Optional[Any], None)
    return create_model(f"{name}_options", __base__=SchedulerOptions, **fields)  # type: ignore[call-overload]


def optimizer_entry(name: str, description: str, options: Iterable[str] = ("lr",),
                    schema: Optional[type[Strict]] = None
                    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an optimizer builder with the shared ``train.*`` keys it reads (``options``) and the
    schema of its own options (``train.optimizer_options``)."""
    def decorator(build: Callable[..., Any]) -> Callable[..., Any]:
        build.reads = frozenset(options)  # type: ignore[attr-defined]
        build.options = build.reads  # type: ignore[attr-defined]  # the name plugins knew
        build.Options = schema or OptimizerOptions  # type: ignore[attr-defined]
        return OPTIMIZERS.register(name, description)(build)
    return decorator


def scheduler_entry(name: str, description: str, options: Iterable[str] = (), per_step: bool = False,
                    on_metric: bool = False, schema: Optional[type[Strict]] = None
                    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a schedule builder with its options' schema (or, as before, the names of the
    ``train.scheduler.*`` keys it reads) and what the trainer must know about it."""
    def decorator(build: Callable[..., Any]) -> Callable[..., Any]:
        build.per_step = per_step  # type: ignore[attr-defined]
        build.on_metric = on_metric  # type: ignore[attr-defined]
        build.Options = schema or legacy_schema(name, options)  # type: ignore[attr-defined]
        build.options = frozenset(build.Options.model_fields)  # type: ignore[attr-defined]
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


Beta = Annotated[float, Field(ge=0, lt=1, strict=True)]


class AdamOptions(OptimizerOptions):
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), description="decay rates of the running means of "
                                     "the gradient and of its square")
    eps: float = Field(1e-8, gt=0, description="added to the denominator, for numerical stability")
    amsgrad: bool = Field(False, description="the AMSGrad variant (the maximum of the squared-gradient "
                          "means)")


class SGDOptions(OptimizerOptions):
    dampening: float = Field(0.0, ge=0, le=1, description="dampening of the momentum")
    nesterov: bool = Field(False, description="Nesterov momentum (needs train.momentum > 0, dampening 0)")

    def check(self, train: Any) -> None:
        if self.nesterov and (train.momentum <= 0 or self.dampening != 0):
            raise ValueError("optimizer_options.nesterov: needs train.momentum > 0 and dampening 0, got "
                             f"momentum {train.momentum} and dampening {self.dampening}")


def _adam(cls: type[torch.optim.Optimizer], params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    o = cfg.optimizer_settings
    kwargs = dict(lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(o.betas), eps=o.eps,
                  amsgrad=o.amsgrad)
    try:  # fused: one kernel per step instead of a loop over tensors (on CPU since torch 2.4)
        return cls(params, fused=True, **kwargs)  # type: ignore[call-arg]
    except RuntimeError:  # an older torch or a device without the fused kernel
        return cls(params, **kwargs)  # type: ignore[call-arg]


@optimizer_entry("adam", "Adam (torch.optim.Adam); train.lr, train.weight_decay; optimizer_options: "
                 "betas, eps, amsgrad", ("lr", "weight_decay"), AdamOptions)
def adam(params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    return _adam(eager(torch.optim.Adam), params, cfg)


@optimizer_entry("adamw", "AdamW, decoupled weight decay; train.lr, train.weight_decay (default 0, "
                 "PyTorch's 0.01); optimizer_options: betas, eps, amsgrad", ("lr", "weight_decay"),
                 AdamOptions)
def adamw(params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    return _adam(eager(torch.optim.AdamW), params, cfg)


@optimizer_entry("sgd", "SGD with momentum; train.lr, train.momentum (default 0.9, PyTorch's 0), "
                 "train.weight_decay; optimizer_options: dampening, nesterov",
                 ("lr", "momentum", "weight_decay"), SGDOptions)
def sgd(params: list[torch.Tensor], cfg: Any) -> torch.optim.Optimizer:
    o = cfg.optimizer_settings
    return eager(torch.optim.SGD)(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                  dampening=o.dampening, nesterov=o.nesterov)


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


class StepOptions(SchedulerOptions):
    step_size: Optional[int] = Field(None, gt=0, description="epochs between decays (default: "
                                     "train.epochs // 3, at least 1)",
                                     json_schema_extra={"default_text": "train.epochs // 3 (at least 1)"})
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor")


class CosineOptions(SchedulerOptions):
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final lr / lr")
    warmup_steps: int = Field(0, ge=0, description="raise lr linearly from lr / warmup_steps to lr over "
                              "the first N optimizer steps, then decay (0: no warm-up)")


class OneCycleOptions(SchedulerOptions):
    pct_start: float = Field(0.3, gt=0, lt=1, description="fraction of the steps spent warming up")
    div_factor: float = Field(25.0, gt=0, description="lr / initial lr")
    final_div_factor: float = Field(1e4, gt=0, description="initial lr / final lr")


class PlateauOptions(SchedulerOptions):
    factor: float = Field(0.1, gt=0, lt=1, description="lr multiplier on a plateau")
    patience: int = Field(2, ge=0, description="epochs without a better validation metric before "
                          "lowering lr (PyTorch's default: 10)")


@scheduler_entry("none", "constant learning rate")
def constant(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> None:
    return None


@scheduler_entry("step", "multiply lr by gamma every step_size epochs (per epoch)", schema=StepOptions)
def step(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> Any:
    s = cfg.scheduler
    return torch.optim.lr_scheduler.StepLR(optimizer, s.step_size or max(1, cfg.epochs // 3), s.gamma)


@scheduler_entry("cosine", "cosine decay over all steps to lr * min_lr_ratio (per step); warmup_steps: "
                 "linear warm-up first", per_step=True, schema=CosineOptions)
def cosine(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> Any:
    s = cfg.scheduler
    if s.warmup_steps or len({g["lr"] for g in optimizer.param_groups}) > 1:
        # a multiplier of each group's own lr (CosineAnnealingLR's floor is one lr for every group)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(warmup_cosine, warmup=s.warmup_steps,
                                         total=max(1, total_steps), floor=s.min_lr_ratio))
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total_steps), eta_min=cfg.lr * s.min_lr_ratio)


@scheduler_entry("onecycle", "one-cycle: warm up to lr, then anneal (per step); pct_start, div_factor, "
                 "final_div_factor", per_step=True, schema=OneCycleOptions)
def onecycle(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> Any:
    s = cfg.scheduler
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(2, total_steps),
        pct_start=s.pct_start, div_factor=s.div_factor, final_div_factor=s.final_div_factor)


@scheduler_entry("plateau", "ReduceLROnPlateau on the task's validation metric (per epoch); factor, "
                 "patience", on_metric=True, schema=PlateauOptions)
def plateau(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int, mode: str) -> Any:
    s = cfg.scheduler
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max" if mode == "max" else "min", factor=s.factor, patience=s.patience)


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
