"""The tiny configurations the checker builds tasks and models with ("cases"): each task's own,
from its classmethod ``check_configs(folder: Path) -> list[dict]`` (every built-in task has one,
see ``rnnlab.tasks.contract``; a plugin task without it is checked with its default options). Each
dict holds ``task`` and optionally ``data`` sections, a ``label`` (or a ``variant``, shown as
``TASK (variant)`` under the name the task is checked as) and the ``model`` to build the
task with; data it needs may be written into ``folder``, which is removed after the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from rnnlab.config.loading import Experiment, build_experiment
from rnnlab.errors import ConfigError

#: the train section of every experiment the checker builds (one thread: checks are small)
TRAIN: dict[str, Any] = {"epochs": 1, "batch_size": 8, "eval_batch_size": 32, "lr": 0.01, "seed": 0,
                         "threads": 1, "device": "cpu"}
#: model options that keep a check fast, used where the model's options have these fields
SMALL: dict[str, Any] = {"hidden_size": 8, "embedding_dim": 8, "hidden_sizes": [8]}


@dataclass(frozen=True)
class Case:
    task: str  # registry name
    label: str  # how findings name it, e.g. "sine (mode: window)"
    sections: dict[str, Any] = field(default_factory=dict)  # task and data sections
    model: str = "lstm"  # the model a task check builds the task with (a spec may depend on it)

    def raw(self, model: dict[str, Any]) -> dict[str, Any]:
        raw = {"name": "check", "task": dict(self.sections.get("task") or {"name": self.task}),
               "data": dict(self.sections.get("data") or {}), "model": dict(model),
               "train": dict(TRAIN), "logging": {"plots": False}}
        raw["task"].setdefault("name", self.task)
        return raw


def cases_for(task: str, folder: Path) -> list[Case]:
    """The cases of a registered task (``folder``: where fake data may be written)."""
    from rnnlab.registry import TASKS

    cls = TASKS.get(task, "task")
    own = getattr(cls, "check_configs", None)
    if callable(own):
        out = []
        for i, entry in enumerate(own(folder)):
            if not isinstance(entry, dict) or not isinstance(entry.get("task", {}), dict):
                raise ConfigError(f"task '{task}': check_configs", f"entry {i} must be a mapping with "
                                  "a 'task' mapping (and optionally 'data', 'label', 'model')")
            sections = {"task": {"name": task, **entry.get("task", {})}, "data": entry.get("data") or {}}
            label = entry.get("label") or f"{task} ({entry.get('variant') or f'config {i}'})"
            out.append(Case(task, str(label), sections,
                            str(entry.get("model") or "lstm")))
        return out
    return [Case(task, task, {"task": {"name": task}})]


def all_cases(folder: Path, only: Optional[str] = None) -> list[Case]:
    from rnnlab.registry import TASKS

    names = [only] if only is not None else TASKS.names()
    return [case for name in names for case in cases_for(name, folder)]


# ----------------------------------------------------------------------------- experiments


def model_section(model: str, options: Optional[dict[str, Any]], small: bool) -> dict[str, Any]:
    """``{"name": model, ...}``: the given options over the SMALL sizes (where the model has them)."""
    from rnnlab.registry import MODELS

    fields = MODELS.get(model, "model").Options.model_fields
    section: dict[str, Any] = {k: v for k, v in SMALL.items() if small and k in fields}
    section.update(options or {})
    section["name"] = model
    return section


def sections(model: str, options: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    """The model sections to try, in order: over the SMALL sizes, then (if that differs) over the
    model's own defaults, for a model that refuses the small sizes."""
    small, plain = model_section(model, options, True), model_section(model, options, False)
    return [small] if small == plain else [small, plain]


def experiment(case: Case, model: str, options: Optional[dict[str, Any]] = None) -> Experiment:
    """The case's experiment with ``model`` (small sizes where the options allow them)."""
    where = f"check case '{case.label}'"
    tries = sections(model, options)
    for section in tries[:-1]:
        try:
            return build_experiment(case.raw(section), where)
        except ConfigError:
            pass
    return build_experiment(case.raw(tries[-1]), where)


# ----------------------------------------------------------------------------- fake MNIST


