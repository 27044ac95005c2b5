"""What the task checks read of a task through its contract (``rnnlab.tasks.contract``): which
examples or series positions each split reads and scores (``split_layout() -> Layout``) and a
perfect predictor with the metrics it must reach (``perfect_predictor() -> Perfect``). Every
built-in task gives both; a plugin task may (otherwise those checks are skipped with a note)."""

from __future__ import annotations

from typing import Any, Optional

from rnnlab.tasks.contract import Layout, Oracle

__all__ = ["Layout", "Oracle", "layout", "perfect"]


def layout(task: Any) -> Optional[Layout]:
    own = getattr(task, "split_layout", None)
    return own() if callable(own) else None


def perfect(task: Any) -> Optional[tuple[dict[str, dict[str, float]], dict[str, float]]]:
    """(metrics per split of the task's perfect predictor, the values they must have), or None when
    the task gives none."""
    from rnnlab.training.evaluation import evaluate

    own = getattr(task, "perfect_predictor", None)
    if not callable(own):
        return None
    p = own()
    with p.context():
        return {s: evaluate(task, p.model, s, 32) for s in p.splits}, p.want
