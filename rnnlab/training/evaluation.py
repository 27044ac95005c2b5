"""Metrics of a model on a split (eval mode, no_grad), and rebuilding a run's task and model from
its directory to evaluate it again (``rnnlab eval``, ``predict``, ``generate``, ``plot`` ...).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from rnnlab.config import plugins
from rnnlab.config.loading import Experiment
from rnnlab.errors import RunDirError
from rnnlab.models.base import Model
from rnnlab.registry import TASKS
from rnnlab.rundir import files as runs
from rnnlab.rundir import identity
from rnnlab.tasks.base import SPEC_FILE, Task, TaskContext
from rnnlab.training.build import build, init_model
from rnnlab.training.limits import check_memory
from rnnlab.training.runtime import resolve_device, set_threads


def load_weights(model: Model, state: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's state dict; one from another model shape is an error naming the file."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise RunDirError(path, f"checkpoint does not match the run's model ({detail[:150]})") from None
    model.flatten_parameters()


def evaluate(task: Task, model: Model, split: str, batch_size: int) -> dict[str, float]:
    """Task metrics on a split, in eval mode (dropout off) under no_grad; restores the mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return task.evaluate(model, split, batch_size)
    finally:
        model.train(was_training)


def check_spec(task: Task, run_dir: Path) -> None:
    """The task rebuilt for inference must have the spec the run was trained with (``spec.json``,
    absent in runs written before it was saved): else the model would be built or read wrongly."""
    path = run_dir / SPEC_FILE
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise RunDirError(path, "corrupted (not valid JSON)") from None
    rebuilt = task.spec.to_json()
    if saved != rebuilt:
        keys = sorted(set(saved) | set(rebuilt)) if isinstance(saved, dict) else ["spec"]
        field = next(k for k in keys if not isinstance(saved, dict) or saved.get(k) != rebuilt.get(k))
        raise RunDirError(path, f"the task rebuilt from the run does not match the spec it was trained "
                          f"with ({field}: saved {saved.get(field) if isinstance(saved, dict) else saved!r}, "
                          f"rebuilt {rebuilt.get(field)!r})")


def load_run(run: str | os.PathLike[str], checkpoint: str = "best", device: str = "cpu",
             allow_foreign: bool = False, for_inference: bool = False
             ) -> tuple[Path, Experiment, Task, Model, dict[str, Any]]:
    """Rebuild task and model from a run directory's own files. A checkpoint of another run is
    refused unless ``allow_foreign`` (``--allow-foreign-checkpoint``). ``for_inference``: the task
    as ``Task.for_inference`` rebuilds it from the run alone, without its data (``Run.model()``,
    ``predict``, ``generate``, ``forecast``, ``export``); otherwise the whole task with its data
    (``eval``, ``plot``)."""
    from rnnlab.config.loading import build_experiment, read_yaml

    run_dir = runs.resolve_run(run)
    exp = build_experiment(read_yaml(run_dir / runs.CONFIG), str(run_dir / runs.CONFIG))
    summary = runs.read_summary(run_dir)
    plugins.verify(summary.get("plugins"), run_dir)  # the same plugin code the run was trained with
    dev = resolve_device(device, "--device")
    threads = summary.get("threads")
    set_threads(threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0
                else exp.train.threads, warn=False)
    if for_inference:
        task = TASKS.get(exp.task.name).for_inference(exp.task, exp.data, TaskContext.of(exp, dev, run_dir))
        check_spec(task, run_dir)
        check_memory(exp, task, dev, draw=False)
        model = init_model(exp, task, dev, pretrained=False)
    else:
        task, model = build(exp, dev, run_dir)
    path = run_dir / runs.CHECKPOINTS / f"{checkpoint}.pt"
    ckpt = runs.load_checkpoint(path, dev)
    identity.check(ckpt, path, run_dir, exp.to_dict(), allow_foreign)
    load_weights(model, ckpt["model"], path)
    return run_dir, exp, task, model, summary


def evaluate_run(run: str | os.PathLike[str], split: str = "test", checkpoint: str = "best",
                 device: str = "cpu", allow_foreign: bool = False) -> dict[str, float]:
    _, exp, task, model, _ = load_run(run, checkpoint, device, allow_foreign)
    batch = exp.train.eval_batch
    return evaluate(task, model, split, batch)
