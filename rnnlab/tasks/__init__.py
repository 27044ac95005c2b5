"""Tasks: one module per task (its data, splits, metrics, plots and verbs), with the files it reads
beside it (``series_files``, ``text_files``, ``charlm_corpora`` ...). Each registers itself in
``rnnlab.registry.TASKS``; importing this package imports every built-in task. See ``base.Task``
for the interface.

May import: ``rundir``, ``config``, ``common``.
"""

from __future__ import annotations

from rnnlab.registry import TASKS

# registration side effects: each module registers its task
from rnnlab.tasks import charlm, memory, mnist, sentiment, series, sine  # noqa: E402,F401
from rnnlab.tasks.base import Batch, Task, TaskSpec  # noqa: E402

__all__ = ["TASKS", "Batch", "Task", "TaskSpec"]
