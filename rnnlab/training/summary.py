"""A run's ``summary.json``: its typed fields (``RunSummary``) and every change a run makes to it:
created when the run starts, re-opened when it resumes, given its error, closed with its status.

The summary is what ``rnnlab runs``, ``compare``, sweeps and the Python API read; ``runfiles``
checks each field's type when it is read back.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypedDict

from rnnlab.common.invocation import invocation
from rnnlab.config import plugins
from rnnlab.errors import RnnlabError
from rnnlab.rundir import files as runs
from rnnlab.training.budget import STOP_EARLY, STOP_EPOCHS
from rnnlab.training.precision import resolve_precision
from rnnlab.training.runtime import determinism, environment

if TYPE_CHECKING:
    import torch

    from rnnlab.config.loading import Experiment
    from rnnlab.models.base import Model
    from rnnlab.tasks.base import Task
    from rnnlab.training.state import TrainState


class RunSummary(TypedDict, total=False):
    status: str  # running, completed, interrupted, diverged, failed
    run_id: str
    run_uuid: str
    name: str
    task: str
    model: str
    metric: str  # the task's validation metric (checkpoint selection, early stopping)
    mode: str  # min or max
    test: dict[str, float]  # the best checkpoint on the test split (empty until training ends)
    best_val: dict[str, float]
    best_epoch: Optional[int]
    epochs_completed: int
    steps: int
    train_seconds: float
    stopped_early: bool
    stopped: str  # why training ended (epochs, early stopping, time budget, max_steps)
    parameters: int
    precision: str
    seed: int
    determinism: dict[str, Any]
    device: str
    threads: int
    cpu: str
    gpu: Optional[str]
    versions: dict[str, Any]
    data: dict[str, Any]  # the task's description of its data (sources, sizes, hashes)
    command: str
    started: str
    finished: str
    error: str
    interrupted: str
    resumed: list[dict[str, Any]]
    replay_of: str
    distributed: Optional[dict[str, Any]]
    plugins: list[dict[str, str]]
    embedding_vectors: dict[str, Any]  # model.embedding_vectors: path, sha256, coverage (share of vocabulary)


def new(exp: "Experiment", run_dir: Path, task: "Task", model: "Model", device: "torch.device",
        threads: int) -> RunSummary:
    """The summary a run starts with (status ``running``)."""
    summary: RunSummary = {
        "status": "running",
        "run_id": run_dir.name,
        "run_uuid": uuid.uuid4().hex,  # unique even when two runs get the same id (see identity.py)
        "name": exp.name,
        "task": exp.task.name,
        "model": exp.model.name,
        "metric": task.spec.metric,
        "mode": task.spec.mode,
        "test": {},
        "best_epoch": None,
        "train_seconds": 0.0,
        "parameters": sum(p.numel() for p in model.parameters()),
        "precision": resolve_precision(exp.train.precision, device, model),
        "seed": exp.train.seed,
        "determinism": determinism(exp, device),
        **environment(device, threads),  # type: ignore[typeddict-item]
        "data": task.describe(),
        "command": invocation(),
        "started": runs.now_iso(),
    }
    if model.embedding_vectors is not None:
        summary["embedding_vectors"] = model.embedding_vectors
    used = plugins.records(exp.config.plugins)
    if used:
        summary["plugins"] = used
    return summary


def reopen(summary: RunSummary, exp: "Experiment", device: "torch.device", threads: int,
           resumed_from: Optional[str]) -> None:
    """A resumed run: running again, on this machine, with its earlier outcome cleared."""
    for key in ("error", "finished", "best_val", "interrupted"):  # a completed run given more epochs: stale
        summary.pop(key, None)  # type: ignore[misc]
    summary["test"] = {}
    summary.update(environment(device, threads))  # type: ignore[typeddict-item]
    summary["determinism"] = determinism(exp, device)
    summary["status"] = "running"
    summary.setdefault("resumed", []).append({"at": runs.now_iso(), "from": resumed_from,
                                              "command": invocation()})


def record_error(summary: RunSummary, exc: BaseException) -> None:
    """The one line a user error reads as; anything else by its type and message."""
    summary["error"] = exc.line() if isinstance(exc, RnnlabError) else f"{type(exc).__name__}: {exc}"


def close(summary: RunSummary, state: "TrainState", status: str) -> None:
    """The run's outcome: its status, how far it got and, when it completed, why it stopped."""
    summary.update({
        "status": status,
        "epochs_completed": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped_early,
        "steps": state.step,
        "train_seconds": round(state.train_seconds, 3),
        "finished": runs.now_iso(),
    })
    if status == "completed":
        summary["stopped"] = state.stopped or (STOP_EARLY if state.stopped_early else STOP_EPOCHS)
