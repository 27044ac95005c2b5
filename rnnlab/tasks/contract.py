"""What a task shows ``rnnlab check`` of itself, beside training and evaluation (``base.Task``):
which examples or series positions each split reads and scores (``split_layout() -> Layout``), a
perfect predictor with the metrics it must reach (``perfect_predictor() -> Perfect``) and the
configs it is checked with (``check_configs(folder)``). Every built-in task implements them (each
in its ``<task>_checks`` module, mixed into the task class); a plugin task may, and the checks it
does not support are skipped with a note. The pieces the implementations share are here."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Literal, Optional

import torch
from torch import nn

SPLITS = ("train", "val", "test")
CONFIDENT = 40.0  # the oracle's logit margin: cross-entropy ~ 1e-17, i.e. 0


@dataclass
class Layout:
    """``examples``: ``targets[split]`` are example ids (N,). ``positions``: ``targets[split]``
    (N, K) and ``inputs[split]`` (N, L) are series positions per window, ``bounds[split]`` the
    split's [start, stop); splits in ``context_before`` may read inputs before their start."""

    kind: Literal["examples", "positions"]
    targets: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)
    context_before: frozenset[str] = frozenset()
    problems: list[str] = field(default_factory=list)  # found while reading the layout


class Oracle(nn.Module):
    """A model that answers from a lookup of its inputs: logits (classification) or values."""

    def __init__(self, answer: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]) -> None:
        super().__init__()
        self.answer = answer

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: Any = None
                ) -> tuple[torch.Tensor, Any]:
        return self.answer(x, lengths), None


@dataclass
class Perfect:
    """A perfect predictor: ``model`` evaluated on ``splits`` (while ``context()`` holds, e.g. the
    task's own prediction replaced by a lookup) must reach ``want`` exactly."""

    model: nn.Module
    want: dict[str, float]
    splits: tuple[str, ...] = SPLITS
    context: Callable[[], ContextManager[Any]] = contextlib.nullcontext


def key(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


def one_hot_logits(labels: torch.Tensor, classes: int) -> torch.Tensor:
    return nn.functional.one_hot(labels.clamp(min=0), classes).float() * CONFIDENT


def lookup(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[bytes, torch.Tensor]:
    table: dict[bytes, torch.Tensor] = {}
    for x, y in pairs:
        for i in range(len(x)):
            table.setdefault(key(x[i]), y[i])
    return table


def answer_from(table: dict[bytes, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    missing = [i for i in range(len(x)) if key(x[i]) not in table]
    if missing:
        raise LookupError(f"the task evaluated input {missing[0]} of a batch that none of its "
                          "splits holds")
    return torch.stack([table[key(x[i])] for i in range(len(x))])


@contextlib.contextmanager
def predicting(task: Any, table: dict[bytes, torch.Tensor]) -> Iterator[None]:
    """Forecasting tasks: the task's own ``predict`` replaced by the lookup for the block."""
    task.predict = lambda model, x: answer_from(table, x).to(x.device)
    try:
        yield
    finally:
        del task.predict


def locate(values: torch.Tensor, series: torch.Tensor) -> Optional[torch.Tensor]:
    """Positions of ``values`` in ``series`` (all distinct), or None where that cannot be told."""
    flat = series.flatten().cpu()
    order = torch.argsort(flat)
    ranked = flat[order]
    if len(ranked) > 1 and bool((ranked[1:] == ranked[:-1]).any()):
        return None
    v = values.cpu().flatten()
    at = torch.searchsorted(ranked, v).clamp(max=len(ranked) - 1)
    if not bool((ranked[at] == v).all()):
        return None
    return order[at].view(values.shape)
