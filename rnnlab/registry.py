"""One tiny registry shape for tasks, models, optimizers and schedulers (timm-style)."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

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
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, tuple[T, str]] = {}

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            doc = description or (getattr(obj, "__doc__", "") or "").strip().splitlines()[0:1]
            self._items[name] = (obj, doc if isinstance(doc, str) else (doc[0] if doc else ""))
            return obj

        return decorator

    def get(self, name: str, where: str | None = None) -> T:
        if name not in self._items:
            known = ", ".join(self.names())
            raise ConfigError(
                where or f"{self.kind}",
                f"unknown {self.kind} '{name}'{did_you_mean(str(name), self.names())}; known: {known}",
            )
        return self._items[name][0]

    def names(self) -> list[str]:
        return sorted(self._items)

    def describe(self) -> Iterator[tuple[str, str]]:
        for name in self.names():
            yield name, self._items[name][1]

    def __contains__(self, name: object) -> bool:
        return name in self._items
