"""A run from config to closed directory: checks before anything is written, the run directory,
its summary, training, the final test of the best checkpoint, plots, and the status it ends with.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from rnnlab.common.console import Reporter
from rnnlab.common.invocation import report
from rnnlab.config.loading import Experiment
from rnnlab.models.base import Model
from rnnlab.rundir import files as runs
from rnnlab.rundir import identity
from rnnlab.tasks.base import SAMPLE_INPUTS, SAVED_INPUTS, SPEC_FILE, Task
from rnnlab.training import summary as run_summary
from rnnlab.training.budget import load_replay
from rnnlab.training.build import build
from rnnlab.training.evaluation import evaluate, load_weights
from rnnlab.training.precision import check_precision
from rnnlab.training.runtime import resolve_device, set_threads
from rnnlab.training.stops import Diverged, Interrupted
from rnnlab.training.summary import RunSummary
from rnnlab.training.trainer import Trainer


def train_run(exp: Experiment, runs_dir: Path, reporter: Reporter) -> Path:
    """Validate, build, create the run directory, train, test, write the summary. Everything that
    can fail because of user input fails before the run directory exists. One process."""
    from rnnlab.common.signals import Stopped

    runs.check_runs_dir(runs_dir)
    if exp.config.logging.plots:
        prefetch_plotting()
    device = resolve_device(exp.train.device)
    ready = prepare(exp, device)
    try:
        run_dir = open_run(exp, runs_dir, ready.task)
        return start_run(Trainer(exp, ready.task, ready.model, run_dir, reporter, device, ready.threads,
                                 ready.precision))
    except BaseException as exc:  # failed or stopped before training began: leave no directory
        runs.discard_unfinished_runs()
        if isinstance(exc, Stopped):
            raise Interrupted(signum=exc.signum, note=f"{exc} during set-up; no run directory was left") \
                from None
        raise


def prefetch_plotting() -> None:
    """Import matplotlib (about a third of torch's import time) in a background thread, so that
    it overlaps with building the model and training (torch releases the GIL in its kernels, file
    writes release it too) instead of adding to the run's end. A failed import is left to the
    plotting code to report."""
    import threading

    def load() -> None:
        try:
            importlib.import_module("rnnlab.common.plots")
        except Exception:  # noqa: BLE001  (reported where the figures are drawn)
            pass

    threading.Thread(target=load, name="rnnlab-import-plots", daemon=True).start()


@dataclass
class Prepared:
    """What a training start has once everything that can fail on the user's input has been checked."""

    task: Task
    model: Model
    threads: int
    precision: str


def prepare(exp: Experiment, device: torch.device, run_dir: Optional[Path] = None,
            threads: Optional[int] = None, precision: Optional[str] = None) -> Prepared:
    """The one set-up of a new run, a resumed one (``run_dir``: its directory, ``precision``: the one
    it trained in) and each torchrun rank (``threads``: its share of the cores): runtime checks, the
    thread count, task and model, and the precision probed on the model's own kernels."""
    check_runtime(exp, device)
    threads = set_threads(threads if threads is not None else exp.train.threads)
    task, model = build(exp, device, run_dir)
    resolved = check_precision(precision or exp.train.precision, device, model)
    return Prepared(task, model, threads, resolved)


def check_runtime(exp: Experiment, device: torch.device) -> None:
    """Checks that need the device, optional packages or other runs, before anything is written
    (those that need the built model: ``check_precision`` with it)."""
    from rnnlab.integrations.mlflow_logging import check_mlflow
    from rnnlab.integrations.tensorboard import require_tensorboard

    check_precision(exp.train.precision, device)
    if exp.train.replay:
        load_replay(exp.to_dict(), exp.train.replay)
    if exp.config.logging.tensorboard:
        require_tensorboard()
    check_mlflow(exp.config.logging.mlflow)


def open_run(exp: Experiment, runs_dir: Path, task: Task) -> Path:
    """A new run directory holding the resolved config and the task's artifacts."""
    run_dir = runs.create_run_dir(runs_dir, exp.name)
    report(run=run_dir.resolve())  # a sweep trial's result file names it at once
    runs.write_text(run_dir / runs.CONFIG, exp.to_yaml())
    task.save_artifacts(run_dir)
    runs.write_json(run_dir / SPEC_FILE, task.spec.to_json())
    save_sample_inputs(task, run_dir)
    return run_dir


def save_sample_inputs(task: Task, run_dir: Path) -> None:
    """The task's first sample inputs, so ``rnnlab export`` verifies against them without the data
    (a task that cannot draw them leaves export to rebuild them from the data)."""
    try:
        x = task.sample_inputs(SAVED_INPUTS)
    except (NotImplementedError, StopIteration):
        return
    runs.save_torch(run_dir / SAMPLE_INPUTS, x.detach().cpu().contiguous())


def start_run(trainer: Trainer, extra: Optional[dict[str, Any]] = None) -> Path:
    """Write the initial summary (plus ``extra`` facts), open the loggers, train and finish,
    holding the run's lock throughout."""
    from rnnlab.integrations.mlflow_logging import open_live
    from rnnlab.integrations.tensorboard import open_tensorboard

    with runs.RunLock(trainer.run_dir):
        summary = run_summary.new(trainer.exp, trainer.run_dir, trainer.task, trainer.model,
                                  trainer.device, trainer.threads)
        summary.update(extra or {})
        summary["precision"] = trainer.amp.name
        if trainer.plan.replay is not None:
            summary["replay_of"] = str(trainer.plan.replay.run_dir)
        runs.write_json(trainer.run_dir / runs.SUMMARY, summary)
        trainer.tensorboard = open_tensorboard(trainer.exp, trainer.run_dir)
        trainer.mlflow = open_live(trainer.exp.config.logging.mlflow, trainer.run_dir, summary,
                                   trainer.exp.to_dict())
        trainer.reporter.run_start(trainer.run_dir, summary)
        return finish_run(trainer, summary)


def finish_run(trainer: Trainer, summary: RunSummary, allow_foreign: bool = False) -> Path:
    """Train to the end, then test the best checkpoint and close the run (the caller holds the
    run's lock). A stop, a divergence or a crash closes the run with that status and re-raises."""
    from rnnlab.common.signals import GracefulStop, Stopped, deferred

    run_dir = trainer.run_dir
    trained = False  # set inside GracefulStop: a signal after it finds the final stage handled
    try:
        with GracefulStop(trainer.request_stop) as stop:
            runs.setup_done(run_dir)  # from here on the run directory stays, whatever happens
            try:
                trainer.fit()
            except Interrupted:
                close_run(trainer, summary, "interrupted")
                raise Interrupted(run_dir, stop.signum, trainer.saved) from None
            except Diverged as exc:
                run_summary.record_error(summary, exc)
                close_run(trainer, summary, "diverged")
                raise
            except KeyboardInterrupt:  # only when no handler could be installed (not the main thread)
                close_run(trainer, summary, "interrupted")
                raise
            except BaseException as exc:
                run_summary.record_error(summary, exc)
                close_run(trainer, summary, "failed")
                raise
            trained = True
        final_outputs(trainer, summary, allow_foreign)
    except Stopped as exc:  # training is complete and saved; the test evaluation is redone on resume
        if not trained:
            raise
        summary["interrupted"] = (f"{exc} during the final test evaluation (training is complete; "
                                  f"rnnlab train --resume {run_dir} evaluates it again)")
        close_run(trainer, summary, "interrupted")
        raise Interrupted(run_dir, exc.signum, trainer.saved) from None
    except BaseException as exc:
        if not trained:
            raise
        run_summary.record_error(summary, exc)
        close_run(trainer, summary, "failed")
        raise
    with deferred():  # a signal now would find the run complete: it waits until it is written
        close_run(trainer, summary, "completed")
    trainer.reporter.run_end(run_dir, summary)
    return run_dir


def final_outputs(trainer: Trainer, summary: RunSummary, allow_foreign: bool = False) -> None:
    """After training: the best checkpoint on the test split (exactly as ``rnnlab eval`` does
    it), the plots and the task's other outputs. ``allow_foreign``: a resume told to take
    another run's checkpoints (``--allow-foreign-checkpoint``)."""
    run_dir = trainer.run_dir
    best_path = run_dir / runs.CHECKPOINTS / "best.pt"
    best = runs.load_checkpoint(best_path, trainer.device)
    identity.check(best, best_path, run_dir, trainer.exp.to_dict(), allow_foreign)
    load_weights(trainer.model, best["model"], best_path)
    summary["test"] = evaluate(trainer.task, trainer.model, "test", trainer.eval_batch_size)
    summary["best_val"] = best["val"]
    if trainer.exp.config.logging.plots:
        trainer.reporter.plots(write_plots(trainer.exp, trainer.task, trainer.model,
                                           trainer.state.history, run_dir))
    trainer.model.eval()  # task outputs beyond figures (e.g. text samples), written even without plots
    with torch.no_grad():
        trainer.task.final_outputs(trainer.model, run_dir)


def close_run(trainer: Trainer, summary: RunSummary, status: str) -> Path:
    run_summary.close(summary, trainer.state, status)
    runs.write_json(trainer.run_dir / runs.SUMMARY, summary)
    if trainer.tensorboard is not None:
        trainer.tensorboard.close(summary)
    if trainer.mlflow is not None:
        trainer.mlflow.close(summary)
    return trainer.run_dir


def write_plots(exp: Experiment, task: Task, model: Model, history: list[dict[str, Any]],
                run_dir: Path) -> list[Path]:
    """Every figure of a run: the learning curves from its metrics, then the task's own from the
    model (in eval mode under no_grad). Training and ``rnnlab plot`` both call this."""
    from rnnlab.common.plots import learning_curves

    paths = [learning_curves(history, run_dir / runs.PLOTS / "learning_curves.png",
                             task.spec.metric, exp.train.clip_grad_norm)]
    model.eval()
    with torch.no_grad():
        paths += task.plots(model, run_dir, history)
    return paths
