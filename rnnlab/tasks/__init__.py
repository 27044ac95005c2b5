"""Tasks register here by name; see ``base.Task`` for the interface."""

from __future__ import annotations

from ..registry import Registry

TASKS: Registry = Registry("task")

# registration side effects: each module registers its task
from . import charlm, memory, mnist, sentiment, series, sine  # noqa: E402,F401
from .base import Batch, Task, TaskSpec  # noqa: E402

__all__ = ["TASKS", "Batch", "Task", "TaskSpec"]
