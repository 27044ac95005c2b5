"""``rnnlab train --resume RUN``: continue a run from ``checkpoints/last.pt``.

The checkpoint holds the whole training state (model, optimizer, scheduler, counters, early
stopping, history, the unfinished epoch, the data pass and every RNG), so on CPU a resumed run
ends with exactly the metrics it would have had if left alone. The run's ``config.yaml`` is rebuilt
and compared with the config saved in the checkpoint: ``--set`` may change only the keys in
``SAFE_TO_CHANGE``, which alter how long or how verbosely training goes on, not what a step does.
Every check runs before anything in the run directory is written.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Optional

from rnnlab.common.console import Reporter
from rnnlab.common.invocation import report
from rnnlab.common.signals import Stopped
from rnnlab.config import plugins
from rnnlab.config.loading import (
    SAFE_TO_CHANGE,
    Experiment,
    Overrides,
    apply_overrides,
    build_experiment,
    read_yaml,
)
from rnnlab.config.schema import flatten
from rnnlab.errors import ConfigError, RnnlabError, RunDirError
from rnnlab.execution.lifecycle import close_run, finish_run, prepare
from rnnlab.integrations.mlflow_logging import open_live
from rnnlab.integrations.tensorboard import open_tensorboard
from rnnlab.rundir import files as runs
from rnnlab.rundir import identity
from rnnlab.training import summary as run_summary
from rnnlab.training.optim import per_step
from rnnlab.training.precision import DTYPES
from rnnlab.training.runtime import launched, resolve_device
from rnnlab.training.state import require_training_state
from rnnlab.training.stops import Interrupted
from rnnlab.training.trainer import Trainer


def changed_keys(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose value differs. A key the saved config knows nothing about (neither it, an
    enclosing value nor a nested one) was added to rnnlab after the checkpoint was written: its
    default keeps the old behaviour, so it does not count."""
    old, now = flatten(saved), flatten(new)

    def known(key: str) -> bool:
        parts = key.split(".")
        return (any(".".join(parts[:i]) in old for i in range(1, len(parts) + 1))
                or any(other.startswith(key + ".") for other in old))

    return {key: (old.get(key), now.get(key)) for key in sorted(set(old) | set(now))
            if old.get(key) != now.get(key) and known(key)}


def is_safe(key: str) -> bool:
    return any(key == safe or key.startswith(safe + ".") for safe in SAFE_TO_CHANGE)


def check_changes(saved: dict[str, Any], exp: Experiment, where: str, source: str) -> None:
    """Refuse a config that differs from the checkpoint's in anything but safe keys; ``source``
    says where the difference comes from."""
    changes = changed_keys(saved, exp.to_dict())
    unsafe = [key for key in changes if not is_safe(key)]
    if unsafe:
        key = unsafe[0]
        was, now = changes[key]
        more = f" (and {len(unsafe) - 1} more)" if len(unsafe) > 1 else ""
        raise ConfigError(where, f"{key}: cannot change when resuming ({was!r} in the checkpoint, "
                          f"{now!r} {source}){more}; safe to change: {', '.join(SAFE_TO_CHANGE)}")
    schedule = exp.train.scheduler.name
    if "train.epochs" in changes and per_step(schedule):  # its shape is fixed by the total step count
        was, now = changes["train.epochs"]
        raise ConfigError(where, f"train.epochs: cannot change when resuming with scheduler "
                          f"'{schedule}' ({was} -> {now}): its schedule spans the original epochs")


def load_config(run_dir: Path, overrides: Overrides, ckpt: dict[str, Any],
                where: str = "--set") -> Experiment:
    """The run's config.yaml with ``overrides`` applied, checked against the checkpoint's config:
    a config.yaml that disagrees is reported against the file, a bad override against ``where``
    (``--set``, or the Python API's ``overrides``)."""
    path = run_dir / runs.CONFIG
    raw = read_yaml(path)
    on_file = build_experiment(dict(raw), str(path))
    saved = ckpt.get("config") or on_file.to_dict()  # checkpoints before format 2 carry none
    check_changes(saved, on_file, str(path),
                  "in this file: edited since, or the checkpoint comes from another run")
    exp = build_experiment(apply_overrides(raw, overrides, where), str(path))
    check_changes(saved, exp, where, "asked")
    return exp


def completed_note(summary: dict[str, Any], ckpt: dict[str, Any], exp: Experiment) -> Optional[str]:
    """Why there is nothing to do, or None. A completed run may go on when train.epochs grew."""
    if summary.get("status") != "completed":
        return None
    state = ckpt["trainer"]
    if state.get("stopped_early"):
        return f"already completed (stopped early after epoch {state['epoch']}); nothing to do"
    if state.get("stopped"):
        return f"already completed (stopped: {state['stopped']} after {state['step']} steps); nothing to do"
    if state["epoch"] >= exp.train.epochs:
        return f"already completed ({state['epoch']} epochs); nothing to do"
    return None


def resume_run(run: str | os.PathLike[str], overrides: Overrides, runs_dir: Path,
               reporter: Reporter, where: str = "--set", allow_foreign: bool = False
               ) -> tuple[Path, Optional[str]]:
    """Continue ``run`` (a path, or a run id under ``runs_dir``) to the end of its training.
    Returns the run directory and, when the run was already complete, a note saying so."""
    if launched():
        raise ConfigError("--resume", "not supported under torchrun yet; resume the run in one "
                          "process (its checkpoint is an ordinary one)")
    run_dir = runs.find_run(run, runs_dir)
    report(run=run_dir.resolve())
    with runs.RunLock(run_dir):
        summary = runs.read_summary(run_dir)
        last = run_dir / runs.CHECKPOINTS / "last.pt"
        if not last.is_file():
            raise RunDirError(last, "no checkpoint to resume from (the run stopped during its first "
                              f"epoch); start it again with: rnnlab train {run_dir / runs.CONFIG}")
        ckpt = runs.load_checkpoint(last)
        require_training_state(ckpt, last)
        identity.check(ckpt, last, run_dir, None, allow_foreign)  # load_config: the rest
        exp = load_config(run_dir, overrides, ckpt, where)
        plugins.verify(summary.get("plugins"), run_dir)  # the code it trained with, unchanged
        note = completed_note(summary, ckpt, exp)
        if note is not None:
            return run_dir, note
        trainer = rebuild(exp, run_dir, ckpt, last, reporter, summary.get("precision"))
        status, before = summary.get("status"), copy.deepcopy(summary)
        try:
            restart_files(trainer, summary, exp)
            trainer.tensorboard = open_tensorboard(exp, run_dir)
            trainer.mlflow = open_live(exp.config.logging.mlflow, run_dir, summary, exp.to_dict())
            if not reporter.quiet:
                reporter.print(f"resuming {run_dir} {trainer.saved}")
            reporter.run_start(run_dir, summary)
        except BaseException as exc:  # stopped or failed before training went on: say so
            if isinstance(exc, Stopped):
                summary["status"] = status if status != "running" else "interrupted"
                close_run(trainer, summary, summary["status"])
                raise Interrupted(run_dir, exc.signum, trainer.saved) from None
            unchanged(trainer, before)
            raise
        return finish_run(trainer, summary, allow_foreign), None


def unchanged(trainer: Trainer, before: dict[str, Any]) -> None:
    """A resume that failed before training went on (a tracker that cannot open, a full disk)
    changed nothing: the summary is put back as it was (an interrupted run stays interrupted,
    resumable), and what it opened is closed. The error is the command's, in one line."""
    closers = [trainer.tensorboard.close if trainer.tensorboard is not None else None,
               (lambda: trainer.mlflow.close(before)) if trainer.mlflow is not None else None]
    for close in filter(None, closers):
        try:
            close()
        except Exception:  # noqa: BLE001 - closing is best effort; the original error matters
            pass
    try:
        runs.write_json(trainer.run_dir / runs.SUMMARY, before)
    except RnnlabError:  # the disk is full: the summary may already be the one before
        pass


def rebuild(exp: Experiment, run_dir: Path, ckpt: dict[str, Any], path: Path,
            reporter: Reporter, precision: Optional[str] = None) -> Trainer:
    """Task, model and trainer from the config, then the checkpoint's state on top. A run goes on
    in the precision it was trained in (``precision``, from its summary) when its config says
    ``auto``, even where ``auto`` would now choose otherwise."""
    device = resolve_device(exp.train.device)
    if exp.train.precision != "auto" or precision not in DTYPES:
        precision = exp.train.precision
    ready = prepare(exp, device, run_dir, precision=precision)
    reporter.log_every = exp.train.log_every
    trainer = Trainer(exp, ready.task, ready.model, run_dir, reporter, device, ready.threads,
                      ready.precision)
    if device.type != "cpu":
        ckpt = runs.load_checkpoint(path, device)  # tensors (optimizer state, carry) onto the device
    trainer.restore(ckpt, path)
    best = run_dir / runs.CHECKPOINTS / "best.pt"
    if trainer.state.best_epoch is not None and not best.is_file():
        raise RunDirError(best, "is missing: the final test metrics come from it, so the run cannot "
                          "be resumed")
    return trainer


def restart_files(trainer: Trainer, summary: dict[str, Any], exp: Experiment) -> None:
    """The first writes of a resume: drop what a killed process left half done, cut
    metrics.jsonl back to the checkpoint (one line per completed epoch), record the resume."""
    run_dir = trainer.run_dir
    runs.remove_stale_temp_files(run_dir)
    runs.write_jsonl(run_dir / runs.METRICS, trainer.state.history)
    if read_yaml(run_dir / runs.CONFIG) != exp.to_dict():  # safe --set changes become the config
        runs.write_text(run_dir / runs.CONFIG, exp.to_yaml())
    run_summary.reopen(summary, exp, trainer.device, trainer.threads, trainer.saved)
    runs.write_json(run_dir / runs.SUMMARY, summary)
