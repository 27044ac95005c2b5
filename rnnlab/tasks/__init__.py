"""Tasks register here by name; see ``base.Task`` for the interface."""

from __future__ import annotations

from ..registry import Registry

TASKS: Registry = Registry("task")

from . import sine  # noqa: E402,F401  (registration side effects)
from . import charlm  # noqa: E402,F401
from . import mnist  # noqa: E402,F401
from . import sentiment  # noqa: E402,F401
from .base import Batch, Task, TaskSpec  # noqa: E402

__all__ = ["TASKS", "Batch", "Task", "TaskSpec"]
