"""The sweep directory ``<runs-dir>/<UTC stamp>_<name>/`` and what a sweep knows from it:
``sweep.yaml`` (the sweep file as resolved, base inline), ``command.txt`` (how it was started, how
to rerun it, how to resume it), ``trials/<trial>.yaml`` (each trial's resolved config, with the
threads it runs with), one normal run directory per trial attempt, ``logs/<run name>.log`` (each
trial's output), ``summary.json``, ``summary.csv``, ``plots/<key>.png``; the trials' records
reconciled with their run directories.
"""

from __future__ import annotations

import os
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rnnlab.common.invocation import invocation, read_result
from rnnlab.common.safeio import dump_yaml
from rnnlab.errors import RnnlabError, RunDirError
from rnnlab.rundir import files as runs
from rnnlab.sweeps.backends import result_file
from rnnlab.sweeps.results import TrialRecord, read_records
from rnnlab.sweeps.spec import Sweep, Trial

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

def commands(sweep_dir: Path, options: Options) -> dict[str, str]:
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

def write_new(sweep_dir: Path, sweep: Sweep, trials: list[Trial], options: Options,
               threads: Optional[int] = None) -> None:
    runs.write_text(sweep_dir / SWEEP_FILE, dump_yaml(sweep.to_dict()))
    for trial in trials:
        set_threads(trial, trial_threads(trial, options, threads))
        write_trial(sweep_dir, trial)
    cmd = commands(sweep_dir, options)
    runs.write_text(sweep_dir / COMMAND_FILE,
                    f"# started with (from {cmd['cwd']}):\n{cmd['command']}\n"
                    f"# rerun it from the resolved sweep file kept here (makes a new sweep directory):\n"
                    f"{cmd['rerun']}\n"
                    f"# run only the trials not completed, in this directory:\n{cmd['resume']}\n")

def reconcile_records(sweep_dir: Path, trials: list[Trial]) -> tuple[dict[str, Any], list[TrialRecord]]:
    """The state of a sweep directory, checked against its trials and reconciled with the run
    directories: a trial whose run completed after the sweep process died counts as completed."""
    meta, records = read_records(sweep_dir)
    if [(r.trial, r.values) for r in records] != [(t.id, t.values) for t in trials]:
        raise RunDirError(sweep_dir / "summary.json", f"its trials do not match {SWEEP_FILE}")
    for trial, record in zip(trials, records):
        if record.status == "completed" or record.attempts == 0:
            continue
        run = trial_run(sweep_dir, trial.run_name(record.attempts))
        summary = run_summary(run)
        if summary.get("status") == "completed":
            record.adopt(summary)
            record.run = str(run.resolve()) if run is not None else None
        elif record.status == "running":  # the sweep process died under it
            record.status = "interrupted"
    for trial in trials:
        if not (sweep_dir / TRIALS / f"{trial.id}.yaml").is_file():
            write_trial(sweep_dir, trial)
    return meta, records

def write_trial(sweep_dir: Path, trial: Trial) -> None:
    runs.write_text(sweep_dir / TRIALS / f"{trial.id}.yaml", dump_yaml(trial.config))

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

def run_summary(run: Optional[Path]) -> dict[str, Any]:
    try:
        return runs.read_summary(run) if run is not None else {}
    except RnnlabError:
        return {}

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

def exit_text(code: Optional[int], error: Optional[str]) -> str:
    if error:
        return error
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exited with status {code}"
