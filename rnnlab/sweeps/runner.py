"""Running a sweep: create (or reopen) the sweep directory, run the trials not yet completed N at a
time, record each as it ends, stop cleanly on Ctrl-C/SIGTERM, rank, write the summaries.

Sweep directory ``<runs-dir>/<UTC stamp>_<name>/``:
``sweep.yaml`` (the sweep file as resolved, base inline), ``command.txt`` (how it was started, how
to rerun it, how to resume it), ``trials/<trial>.yaml`` (each trial's resolved config), one normal
run directory per trial attempt, ``logs/<run name>.log`` (each trial's output), ``summary.json``,
``summary.csv``, ``plots/<key>.png``.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .. import mlflow_log, runs
from ..errors import ConfigError, RnnlabError, RunDirError
from ..invocation import invocation, read_result
from ..safeio import dump_yaml
from .backends import STOP_GRACE_S, LocalBackend, RayBackend, result_file, train_args
from .results import FINISHED, Ranking, TrialRecord, ranked_table, read_records, write_plots, write_summaries
from .spec import Sweep, Trial, expand, load_sweep

SWEEP_FILE = "sweep.yaml"
COMMAND_FILE = "command.txt"
TRIALS, LOGS = "trials", "logs"
MAX_WORKERS = 1024  # trial processes at once
LOCK, STOP = ".lock", ".stop"
BACKENDS = ("local", "ray", "slurm", "submitit-local")


@dataclass
class Outcome:
    sweep_dir: Path
    status: str  # completed (every trial), incomplete (some did not complete), interrupted
    ordered: list[TrialRecord]  # best first
    table: Any  # a rich Table
    best: Optional[TrialRecord]


@dataclass
class Options:
    workers: int = 1
    backend: str = "local"
    address: Optional[str] = None  # Ray cluster address (default: a local Ray instance)
    threads: Optional[int] = None  # --threads: every trial's train.threads (default: see trial_threads)
    slurm: Optional[dict[str, Any]] = None  # --slurm KEY=VALUE: resources over the sweep file's slurm:


def run_sweep(sweep_file: Optional[Path | Sweep], runs_dir: Path, resume: Optional[Path], options: Options,
              say: Callable[[str], None] = print) -> Outcome:
    """``rnnlab sweep``: a new sweep from ``sweep_file`` (a path or a parsed ``Sweep``) in
    ``runs_dir``, or ``resume`` an existing sweep directory (running only its trials not completed)."""
    check_options(options)
    if resume is not None:
        sweep_dir, sweep, trials = _reopen(resume, sweep_file)
    else:
        if sweep_file is None:
            raise ConfigError("sweep", "give a sweep file (or --resume a sweep directory)")
        sweep = sweep_file if isinstance(sweep_file, Sweep) else load_sweep(sweep_file)
        trials = expand(sweep)  # every trial validated before anything is created
        sweep_dir = None
    if sweep.search is not None:  # Optuna installed, metric known: before anything is written
        from .optuna_search import prepare

        prepare(sweep)
    tracking = mlflow_log.base_options(sweep.base)
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
                mlflow_log.sweep_tracking(sweep.base, sweep_dir, say):
            if sweep.search is not None:  # tpe/cmaes: Optuna asks for the trials as slots free
                from .optuna_search import drive

                return drive(sweep, sweep_dir, resume is not None, backend, options, say)
            if resume is None:
                _write_new(sweep_dir, sweep, trials, options, backend.threads)
                records, before = [TrialRecord(t.id, t.values) for t in trials], {}
            else:
                before, records = _records(sweep_dir, trials)
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


# ----------------------------------------------------------------------------- the directory


def _reopen(resume: Path, sweep_file: Optional[Path]) -> tuple[Path, Sweep, list[Trial]]:
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


def _commands(sweep_dir: Path, options: Options) -> dict[str, str]:
    backend = ["--backend", options.backend] if options.backend != "local" else []
    if options.address:
        backend += ["--ray-address", options.address]
    where = sweep_dir.resolve()
    common = ["--workers", str(options.workers), *backend]
    if options.threads is not None:
        common += ["--threads", str(options.threads)]
    for key, value in (options.slurm or {}).items():
        common += ["--slurm", f"{key}={value}"]
    return {
        "command": invocation(),
        "cwd": os.getcwd(),
        "rerun": shlex.join(["rnnlab", "sweep", str(where / SWEEP_FILE), "--runs-dir", str(where.parent),
                             *common]),
        "resume": shlex.join(["rnnlab", "sweep", "--resume", str(where), *common]),
    }


def _write_new(sweep_dir: Path, sweep: Sweep, trials: list[Trial], options: Options,
               threads: Optional[int] = None) -> None:
    runs.write_text(sweep_dir / SWEEP_FILE, dump_yaml(sweep.to_dict()))
    for trial in trials:
        set_threads(trial, trial_threads(trial, options, threads))
        _write_trial(sweep_dir, trial)
    cmd = _commands(sweep_dir, options)
    runs.write_text(sweep_dir / COMMAND_FILE,
                    f"# started with (from {cmd['cwd']}):\n{cmd['command']}\n"
                    f"# rerun it from the resolved sweep file kept here (makes a new sweep directory):\n"
                    f"{cmd['rerun']}\n"
                    f"# run only the trials not completed, in this directory:\n{cmd['resume']}\n")


def _records(sweep_dir: Path, trials: list[Trial]) -> tuple[dict[str, Any], list[TrialRecord]]:
    """The state of a sweep directory, checked against its trials and reconciled with the run
    directories: a trial whose run completed after the sweep process died counts as completed."""
    meta, records = read_records(sweep_dir)
    if [(r.trial, r.values) for r in records] != [(t.id, t.values) for t in trials]:
        raise RunDirError(sweep_dir / "summary.json", f"its trials do not match {SWEEP_FILE}")
    for trial, record in zip(trials, records):
        if record.status == "completed" or record.attempts == 0:
            continue
        run = trial_run(sweep_dir, trial.run_name(record.attempts))
        summary = _run_summary(run)
        if summary.get("status") == "completed":
            record.adopt(summary)
            record.run = str(run.resolve()) if run is not None else None
        elif record.status == "running":  # the sweep process died under it
            record.status = "interrupted"
    for trial in trials:
        if not (sweep_dir / TRIALS / f"{trial.id}.yaml").is_file():
            _write_trial(sweep_dir, trial)
    return meta, records


def _write_trial(sweep_dir: Path, trial: Trial) -> None:
    runs.write_text(sweep_dir / TRIALS / f"{trial.id}.yaml", dump_yaml(trial.config))


def _backend(options: Options, sweep: Sweep) -> Any:
    if options.backend == "ray":
        return RayBackend(options.workers, options.address)
    if options.backend in ("slurm", "submitit-local"):
        from .submitit_backend import SubmititBackend

        return SubmititBackend(options, sweep)
    return LocalBackend(options.workers)


def trial_threads(trial: Trial, options: Options, share: Optional[int]) -> int:
    """A trial's ``train.threads``: ``--threads``, else its config's (the base config's or a swept
    value), else ``share``: the backend's cores divided among the workers."""
    train = trial.config.get("train") or {}
    return options.threads or train.get("threads") or share or 1


def set_threads(trial: Trial, threads: int) -> None:
    """Write the threads a trial runs with into its config, so ``trials/<id>.yaml`` reruns it alike."""
    trial.config.setdefault("train", {})["threads"] = threads


def threads_source(sweep: Sweep, options: Options, backend: Any) -> str:
    """How many threads each trial gets, and why: for the sweep's first line and summary."""
    train = sweep.base.get("train") if isinstance(sweep.base.get("train"), dict) else {}
    if options.threads is not None:
        return f"{options.threads} (--threads)"
    if "train.threads" in sweep.keys:
        return "as swept (train.threads)"
    if train.get("threads") is not None:
        return f"{train['threads']} (the base config's train.threads)"
    return f"{backend.threads} ({backend.cores} cores / {options.workers} workers)"


def _run_summary(run: Optional[Path]) -> dict[str, Any]:
    try:
        return runs.read_summary(run) if run is not None else {}
    except RnnlabError:
        return {}


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """``kill PID`` stops a sweep as cleanly as Ctrl-C does."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- the driver


@dataclass
class Running:
    record: TrialRecord
    trial: Trial
    run_name: str
    log: Path
    started: float


class Driver:
    def __init__(self, sweep: Sweep, trials: list[Trial], records: list[TrialRecord], sweep_dir: Path,
                 backend: Any, options: Options, say: Callable[[str], None]) -> None:
        self.sweep, self.trials, self.records = sweep, trials, records
        self.sweep_dir, self.backend, self.options, self.say = sweep_dir, backend, options, say
        self.ranking = Ranking.of(sweep)
        self.meta: dict[str, Any] = {
            "sweep": sweep.name, "id": sweep_dir.name, "status": "running", "backend": backend.name,
            "workers": options.workers, "threads_per_trial": threads_source(sweep, options, backend),
            "cores": backend.cores,
            **_commands(sweep_dir, options), "started": runs.now_iso(), "finished": None,
        }
        self.running: dict[Any, Running] = {}
        self.done = sum(r.status == "completed" for r in records)

    def settled(self, record: TrialRecord) -> bool:
        """Whether a trial needs no rerun (hook: a search also counts pruned trials as settled)."""
        return record.status == "completed"

    def save(self) -> list[TrialRecord]:
        return write_summaries(self.sweep_dir, self.meta, self.records, self.sweep.keys, self.ranking)

    def run(self) -> Outcome:
        todo = [(t, r) for t, r in zip(self.trials, self.records) if r.status != "completed"]
        for _, record in todo:
            record.status = "pending"
        self.backend.stop_file = self.sweep_dir / STOP
        self.backend.stop_file.unlink(missing_ok=True)
        self.say(f"sweep {self.sweep_dir}: {len(todo)} of {len(self.trials)} trials to run")
        self.describe([t for t, _ in todo])
        self.save()
        interrupted = False
        with _sigterm_as_interrupt():
            try:
                self.loop(todo)
            except KeyboardInterrupt:
                interrupted = True
                self.say("interrupted: stopping the running trials (Ctrl-C again to kill them)")
                self.stop()
            except BaseException:  # e.g. the ranking metric is not one the trials report
                self.stop()
                self.finish(interrupted=True)
                raise
        return self.finish(interrupted)

    def describe(self, trials: list[Trial]) -> None:
        """The line that says what the sweep runs: backend, workers, threads per trial."""
        self.say(f"backend {self.backend.name} ({self.backend.cores} cores), {self.options.workers} "
                 f"worker(s), threads per trial: {self.meta['threads_per_trial']}")
        most = max((self.threads(t) for t in trials), default=0)
        if self.options.workers * most > self.backend.cores:
            self.say(f"note: {self.options.workers} workers x {most} threads > {self.backend.cores} cores: "
                     "the cores are oversubscribed")

    def threads(self, trial: Trial) -> int:
        return trial_threads(trial, self.options, self.backend.threads)

    def loop(self, todo: list[tuple[Trial, TrialRecord]]) -> None:
        queue = list(reversed(todo))
        # a queueing backend (submitit) takes every trial at once and runs --workers at a time itself
        slots = len(queue) if getattr(self.backend, "queues", False) else self.options.workers
        while queue or self.running:
            while queue and len(self.running) < slots:
                self.start(*queue.pop())
            for handle, code, error in self.backend.wait(list(self.running), timeout=0.5):
                self.ranking.check(self.end(handle, code, error, stopped=False))

    def start(self, trial: Trial, record: TrialRecord) -> None:
        record.attempts += 1
        name = trial.run_name(record.attempts)
        log = self.sweep_dir / LOGS / f"{name}.log"
        threads = self.threads(trial)
        set_threads(trial, threads)
        _write_trial(self.sweep_dir, trial)  # as it runs now (a resumed sweep may share cores anew)
        args = train_args(self.sweep_dir / TRIALS / f"{trial.id}.yaml", self.sweep_dir, name)
        handle = self.backend.start(args, log, threads)
        self.running[handle] = Running(record, trial, name, log, time.monotonic())
        record.status, record.error, record.run = "running", None, None
        self.say(f"{trial.id} {'queued' if getattr(self.backend, 'queues', False) else 'started'}: "
                 f"{trial.label()}")
        self.save()

    def end(self, handle: Any, code: Optional[int], error: Optional[str], stopped: bool) -> TrialRecord:
        job = self.running.pop(handle)
        record = job.record
        record.seconds = time.monotonic() - job.started
        result = read_result(result_file(self.sweep_dir, job.run_name))
        run = trial_run(self.sweep_dir, job.run_name)
        record.run = str(run.resolve()) if run is not None else None
        summary = _run_summary(run)
        if summary.get("status") in FINISHED:
            record.adopt(summary)
        else:  # no run directory, or the process died before closing it
            record.status = "interrupted" if stopped else "failed"
            record.val, record.test = {}, {}
        if record.status == "completed":
            self.done += 1
        elif stopped and record.status == "interrupted":
            record.error = "stopped with the sweep"
        else:
            record.error = (record.error or result.get("error") or log_error(job.log)
                            or _exit_text(code, error))
        self.report(job, record)
        self.save()
        return record

    def report(self, job: Running, record: TrialRecord) -> None:
        line = f"{job.trial.id} {record.status} in {record.seconds:.1f}s"
        if record.status == "completed":
            self.ranking.resolve([record])
            metrics = record.val if self.ranking.split == "val" else record.test
            value = metrics.get(self.ranking.metric)
            if value is not None:
                line += f": {self.ranking.label} {value:.4g}"
        elif record.error:
            line += f": {record.error}"
        self.say(f"[{self.done}/{len(self.records)} completed] {line}")

    def stop(self) -> None:
        """Interrupt every running trial, give each time to close its run, then kill the rest."""
        for handle in self.running:
            self.backend.interrupt(handle)
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            while self.running and time.monotonic() < deadline:
                for handle, code, error in self.backend.wait(list(self.running), timeout=0.5):
                    self.end(handle, code, error, stopped=True)
        except KeyboardInterrupt:
            pass
        for handle in list(self.running):
            self.backend.kill(handle)
            self.end(handle, None, "killed", stopped=True)

    def finish(self, interrupted: bool) -> Outcome:
        if interrupted:
            status = "interrupted"
        else:
            status = "completed" if all(self.settled(r) for r in self.records) else "incomplete"
        for record in self.records:
            if record.status == "running":  # interrupted between its end and its record
                record.status = "interrupted"
        self.meta.update(status=status, finished=runs.now_iso())
        ordered = self.save()
        write_plots(self.sweep, self.records, self.sweep_dir / runs.PLOTS, self.ranking)
        best = ordered[0] if ordered and ordered[0].rank == 1 else None
        mode = f" ({self.ranking.mode})" if self.ranking.mode else ""
        title = f"{self.sweep.name}: {len(self.records)} trials, ranked by {self.ranking.label}{mode}"
        table = ranked_table(ordered, self.sweep.keys, self.ranking, title)
        return Outcome(self.sweep_dir, status, ordered, table, best)


def trial_run(sweep_dir: Path, run_name: str) -> Optional[Path]:
    """The run directory of a trial attempt, as its result file names it (sweeps started before
    result files existed: found by its name, ``find_run``)."""
    path = result_file(sweep_dir, run_name)
    if path.is_file():
        run = read_result(path).get("run")
        return Path(run) if isinstance(run, str) and Path(run).is_dir() else None
    return find_run(sweep_dir, run_name)


def find_run(sweep_dir: Path, run_name: str) -> Optional[Path]:
    """The run directory ``rnnlab train --name run_name`` made (``<stamp>_<name>``, maybe ``-2``)."""
    found = [p for p in sweep_dir.glob(f"*_{run_name}*") if p.is_dir()
             and (p.name.endswith(f"_{run_name}") or p.name.rpartition("-")[0].endswith(f"_{run_name}"))]
    return max(found, default=None)


def log_error(log: Path) -> Optional[str]:
    """Without a reported error (a trial that died, or one from before result files): the trial's
    own one-line error (``error: ...``) in its log, else the last line it printed."""
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return None
    lines = [ln for ln in lines if ln and not ln.startswith("rnnlab hit an internal error")]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    if errors:
        return errors[-1].removeprefix("error: ")
    return lines[-1][:300] if lines else None


def _exit_text(code: Optional[int], error: Optional[str]) -> str:
    if error:
        return error
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exited with status {code}"
