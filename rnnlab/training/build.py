"""What a config builds: the task, and the model against the task's spec (seeded) and within the
memory it may use. (The optimizer and schedule: ``rnnlab.training.optim``.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from rnnlab.config.loading import Experiment
from rnnlab.models.base import Model, build_model
from rnnlab.models.wordvectors import load_into
from rnnlab.registry import TASKS
from rnnlab.tasks.base import Task, TaskContext
from rnnlab.training.limits import allocation_guard, check_memory
from rnnlab.training.runtime import seed_everything


def build_task(exp: Experiment, device: torch.device, run_dir: Optional[Path] = None) -> Task:
    return TASKS.get(exp.task.name)(exp.task, exp.data, TaskContext.of(exp, device, run_dir))


def build(exp: Experiment, device: torch.device, run_dir: Optional[Path] = None
          ) -> tuple[Task, Model]:
    """Task, then the model against the task's spec (seeded, so init is reproducible). The
    model's memory is estimated (on the meta device) and refused before it is allocated when it
    cannot fit; an allocation that fails anyway is one line too."""
    with allocation_guard(f"the task's data (task {exp.task.name})"):
        task = build_task(exp, device, run_dir)
    check_memory(exp, task, device, draw=run_dir is None)
    with allocation_guard(f"the model (model {exp.model.name})"):
        return task, init_model(exp, task, device, pretrained=run_dir is None)


def init_model(exp: Experiment, task: Task, device: torch.device, pretrained: bool = True) -> Model:
    """The model as a run of ``exp`` starts: initialised from ``train.seed`` alone, then, with
    ``pretrained``, the vocabulary's rows of ``model.embedding_vectors`` (recorded on the model as
    ``embedding_vectors``: path, sha256, coverage). A run directory's model skips the file: its
    checkpoint holds the weights."""
    seed_everything(exp.train.seed)
    model = build_model(exp.model, task.spec, where="config").to(device)
    source = getattr(exp.model, "embedding_vectors", None)
    if pretrained and source is not None:
        model.embedding_vectors = load_into(model, task, source)
    model.flatten_parameters()
    return model
