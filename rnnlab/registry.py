"""The four registries (tasks, models, optimizers, schedulers) and their one tiny shape (timm-style).

They live here, at the bottom of the package, so that a task or model module registers itself
without importing its package's ``__init__``, and the config can validate names without importing
any family. A registry imports its built-in entries (the package named by ``builtins``) the first
time it is read, so ``import rnnlab.registry`` costs nothing and reading a registry always sees every
built-in entry; plugins add theirs with ``rnnlab.register_task`` and friends (``rnnlab.plugin``).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from rnnlab.errors import ConfigError

T = TypeVar("T")


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def not_one_of(word: str, choices: list[str]) -> str:
    """The config error for a name outside ``choices``, worded as for a fixed choice."""
    names = [repr(name) for name in choices]
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
    return f"must be one of {listed}, got {word!r}{did_you_mean(word, choices)}"


def registered(registry: "Registry[Any]", name: str) -> str:
    """``name`` if ``registry`` holds it, else the ``not_one_of`` error (for config validators)."""
    if name not in registry:
        raise ValueError(not_one_of(name, registry.names()))
    return name


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, tuple[T, str]] = {}
        self._builtins = builtins  # the module registering the built-in entries, imported on first read

    def _load(self) -> None:
        if self._builtins is not None:
            module, self._builtins = self._builtins, None
            importlib.import_module(module)

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            doc = description or (getattr(obj, "__doc__", "") or "").strip().splitlines()[0:1]
            self._items[name] = (obj, doc if isinstance(doc, str) else (doc[0] if doc else ""))
            return obj

        return decorator

    def get(self, name: str, where: str | None = None) -> T:
        self._load()
        if name not in self._items:
            known = ", ".join(self.names())
            raise ConfigError(
                where or f"{self.kind}",
                f"unknown {self.kind} '{name}'{did_you_mean(str(name), self.names())}; known: {known}",
            )
        return self._items[name][0]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def describe(self) -> Iterator[tuple[str, str]]:
        self._load()
        for name in self.names():
            yield name, self._items[name][1]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items


TASKS: Registry[Any] = Registry("task", builtins="rnnlab.tasks")
MODELS: Registry[Any] = Registry("model", builtins="rnnlab.models")
OPTIMIZERS: Registry[Any] = Registry("optimizer", builtins="rnnlab.training.optim")
SCHEDULERS: Registry[Any] = Registry("scheduler", builtins="rnnlab.training.optim")
