"""What can be named in a config: ``rnnlab list`` (every registered task, model, optimizer and
scheduler, and where it comes from) and ``rnnlab list NAME`` (one entry's options, from its schema)."""

from __future__ import annotations

import typing
from typing import Any, Iterator, Optional

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from rnnlab.errors import ConfigError
from rnnlab.registry import Registry, did_you_mean


def registries() -> list[tuple[str, Registry]]:
    from rnnlab.config.plugins import load_entry_points
    from rnnlab.registry import MODELS, OPTIMIZERS, SCHEDULERS, TASKS

    load_entry_points()
    return [("task", TASKS), ("model", MODELS), ("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS)]


def entries() -> Iterator[tuple[str, str, str, str]]:
    """(kind, name, description, origin) of every entry; built-in entries from their static rows
    (``registry.BUILTIN``), so listing imports neither them nor torch."""
    from rnnlab.config.plugins import module_origin

    for kind, registry in registries():
        for name, description, module in registry.listing():
            yield kind, name, description, module_origin(module)


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = " | ".join(type_name(a) for a in args)
        return f"{inner} (optional)" if len(args) < len(typing.get_args(annotation)) else inner
    if origin is typing.Annotated:  # a constrained item type, e.g. tuple[Annotated[float, ...], ...]
        return type_name(typing.get_args(annotation)[0])
    if origin in (tuple, list, dict, set):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in typing.get_args(annotation))}]"
    if origin is not None:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def option_rows(model: type[BaseModel], prefix: str, skip: tuple[str, ...] = ("name",),
                only: Optional[frozenset[str]] = None) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for each field of an options schema."""
    rows = []
    for key, info in model.model_fields.items():
        if key in skip or (only is not None and key not in only):
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if "default_text" in extra:  # a default derived from other keys
            default = str(extra["default_text"])
        elif info.default is not PydanticUndefined:
            default = repr(info.default)
        elif info.default_factory is not None:
            default = repr(info.default_factory())  # type: ignore[call-arg]
        else:
            default = "(required)"
        constraints = [str(m) for m in info.metadata]
        description = (info.description or "") + (f" [{', '.join(constraints)}]" if constraints else "")
        rows.append((f"{prefix}.{key}", type_name(info.annotation), default, description))
    return rows


def describe(name: str) -> tuple[str, str, str, list[tuple[str, str, str, str]]]:
    """(kind, description, origin, option rows) of the entry called ``name``."""
    from rnnlab.config.plugins import origin
    from rnnlab.config.schema import TrainConfig

    found = [(kind, reg) for kind, reg in registries() if name in reg]
    if not found:
        every = sorted({n for _, reg in registries() for n in reg.names()})
        raise ConfigError("rnnlab list", f"no task, model, optimizer or scheduler named {name!r}"
                          f"{did_you_mean(name, every)}; `rnnlab list` shows them all")
    kind, registry = found[0]
    obj = registry.get(name)
    description = dict(registry.describe())[name]
    if kind == "task":
        rows = option_rows(obj.Options, "task") + option_rows(obj.DataOptions, "data", skip=())
    elif kind == "model":
        rows = option_rows(obj.Options, "model")
    elif kind == "scheduler":
        rows = option_rows(obj.Options, "train.scheduler", skip=())
    else:  # the shared train keys it reads, then its own options
        rows = (option_rows(TrainConfig, "train", only=frozenset(obj.reads))
                + option_rows(obj.Options, "train.optimizer_options", skip=()))
    return kind, description, origin(obj), rows


def param_group_docs(name: str) -> list[tuple[str, str]]:
    """A model's declared parameter groups (``Model.PARAM_GROUPS``) after ``default``; [] otherwise."""
    from rnnlab.registry import MODELS

    if name not in MODELS:
        return []
    declared = getattr(MODELS.get(name), "PARAM_GROUPS", {})
    if not declared:
        return []
    return [("default", "every other parameter: train.lr, train.weight_decay"), *declared.items()]
