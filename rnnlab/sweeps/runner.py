"""Running a sweep (``rnnlab sweep``): create (or reopen) the sweep directory (``sweeps.sweepdir``),
then hand its trials to the driver (``sweeps.driver``) or to an Optuna search (``sweeps.optuna_search``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from rnnlab.common.safeio import dump_yaml
from rnnlab.errors import ConfigError, RunDirError
from rnnlab.integrations import mlflow_logging as mlflow_log
from rnnlab.rundir import files as runs
from rnnlab.sweeps import tracking as sweep_mlflow
from rnnlab.sweeps.backends import LocalBackend, RayBackend
from rnnlab.sweeps.driver import Driver
from rnnlab.sweeps.results import TrialRecord
from rnnlab.sweeps.spec import Sweep, Trial, expand
from rnnlab.sweeps.sweepdir import (
    BACKENDS,
    LOCK,
    LOGS,
    MAX_WORKERS,
    SWEEP_FILE,
    TRIALS,
    Options,
    Outcome,
    reconcile_records,
    write_new,
)
from rnnlab.sweeps.sweepfile import load_sweep


def run_sweep(sweep_file: Optional[Path | Sweep], runs_dir: Path, resume: Optional[Path], options: Options,
              say: Callable[[str], None] = print) -> Outcome:
    """``rnnlab sweep``: a new sweep from ``sweep_file`` (a path or a parsed ``Sweep``) in
    ``runs_dir``, or ``resume`` an existing sweep directory (running only its trials not completed)."""
    check_options(options)
    if resume is not None:
        sweep_dir, sweep, trials = reopen(resume, sweep_file)
    else:
        if sweep_file is None:
            raise ConfigError("sweep", "give a sweep file (or --resume a sweep directory)")
        sweep = sweep_file if isinstance(sweep_file, Sweep) else load_sweep(sweep_file)
        trials = expand(sweep)  # every trial validated before anything is created
        sweep_dir = None
    if sweep.search is not None:  # Optuna installed, metric known: before anything is written
        from rnnlab.sweeps.optuna_study import prepare

        prepare(sweep)
    tracking = sweep_mlflow.base_options(sweep.base)
    if tracking is not None:
        mlflow_log.check_options(tracking, f"{sweep.source}: base: logging.mlflow")
        # trials leave MLflow to the sweep; set before Ray starts its workers, which inherit it
        os.environ[mlflow_log.SWEEP_ENV] = "1"
    try:
        backend = _backend(options, sweep)  # a backend that cannot start fails before anything is written
    except BaseException:
        os.environ.pop(mlflow_log.SWEEP_ENV, None)
        raise
    try:
        with _locked_dir(sweep_dir, sweep, runs_dir) as sweep_dir, \
                sweep_mlflow.sweep_tracking(sweep.base, sweep_dir, say):
            if sweep.search is not None:  # tpe/cmaes: Optuna asks for the trials as slots free
                from rnnlab.sweeps.optuna_search import drive

                return drive(sweep, sweep_dir, resume is not None, backend, options, say)
            if resume is None:
                write_new(sweep_dir, sweep, trials, options, backend.threads)
                records, before = [TrialRecord(t.id, t.values) for t in trials], {}
            else:
                before, records = reconcile_records(sweep_dir, trials)
                runs.write_text(sweep_dir / SWEEP_FILE, dump_yaml(sweep.to_dict()))
            driver = Driver(sweep, trials, records, sweep_dir, backend, options, say)
            if before:  # keep when the sweep first started, and note each resumption
                driver.meta.update(started=before.get("started"),
                                   resumed=[*before.get("resumed", []), driver.meta["started"]])
            return driver.run()
    finally:
        backend.close()
        os.environ.pop(mlflow_log.SWEEP_ENV, None)


def check_options(options: Options) -> None:
    workers = options.workers
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError("--workers", f"must be an integer from 1 to {MAX_WORKERS} (trials run as "
                          f"that many processes at once), got {workers!r}")
    if options.backend not in BACKENDS:
        raise ConfigError("--backend", f"must be one of {', '.join(BACKENDS)}, got {options.backend!r}")
    if options.threads is not None and options.threads < 1:
        raise ConfigError("--threads", f"must be >= 1, got {options.threads}")


def reopen(resume: Path, sweep_file: Optional[Path]) -> tuple[Path, Sweep, list[Trial]]:
    if not (resume / SWEEP_FILE).is_file():
        if not resume.is_dir():
            raise RunDirError(resume, "sweep directory not found")
        raise RunDirError(resume, f"not a sweep directory ({SWEEP_FILE} is missing)")
    stored = load_sweep(resume / SWEEP_FILE)
    sweep = stored
    if sweep_file is not None:
        sweep = load_sweep(sweep_file)
        if sweep.identity() != stored.identity():
            raise ConfigError(sweep_file, f"does not match the sweep in {resume} (base, grid, random "
                              f"or seed differ); resume it with `rnnlab sweep --resume {resume}` alone")
        sweep.name = stored.name  # a resumed sweep may change only how it ranks
    return resume, sweep, expand(sweep)


@contextmanager
def _locked_dir(sweep_dir: Optional[Path], sweep: Sweep, runs_dir: Path) -> Iterator[Path]:
    """Create the sweep directory (new sweep) and hold its lock: two processes never drive one sweep."""
    if sweep_dir is None:
        sweep_dir = runs.create_run_dir(runs_dir, sweep.name, subdirs=(TRIALS, LOGS, runs.PLOTS))
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one sweep per directory is up to the user
        yield sweep_dir
        return
    with open(sweep_dir / LOCK, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(sweep_dir, "another rnnlab sweep is running in this directory") from None
        yield sweep_dir


def _backend(options: Options, sweep: Sweep) -> Any:
    if options.backend == "ray":
        return RayBackend(options.workers, options.address)
    if options.backend in ("slurm", "submitit-local"):
        from rnnlab.sweeps.submitit_backend import SubmititBackend

        return SubmititBackend(options, sweep)
    local = LocalBackend(options.workers)
    local.prepare()  # the trials' preloaded launcher imports torch while the sweep sets up
    return local




