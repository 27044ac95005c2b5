"""Trials as submitit jobs (extra ``rnnlab[slurm]``): ``--backend slurm`` submits them to a Slurm
cluster, ``--backend submitit-local`` runs the very same jobs on this machine (submitit's local
executor), for laptops and tests.

Each job runs one trial's ``rnnlab train`` process (``TrialJob``). A grid/random sweep hands all its
trials over at once: on Slurm they go out as one job array of which at most ``--workers`` run at a
time (``slurm_array_parallelism``); the local executor has no arrays, so this backend submits them
``--workers`` at a time. Per-trial resources come from the sweep file's ``slurm:`` section and
``--slurm KEY=VALUE`` (``RESOURCES``). A job that is preempted or reaches its time limit gets
submitit's signal: ``TrialJob.checkpoint`` stops the trial (it saves ``checkpoints/last.pt``) and
requeues the job as ``rnnlab train --resume`` of the same run, which ends with the metrics it would
have had. The job folder is ``<sweep dir>/submitit/``; the sweep directory must be on a filesystem
the nodes share.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import rnnlab
from rnnlab.common.invocation import read_result
from rnnlab.errors import ConfigError
from rnnlab.sweeps.backends import launch, own_stop_file, result_file, stop_group, supervise, trial_args
from rnnlab.sweeps.resources import DEFAULT_MINUTES, parse_resources
from rnnlab.training.runtime import available_cores

FOLDER = "submitit"


def require_submitit(where: str) -> Any:
    try:
        import submitit
    except ImportError:
        raise ConfigError(where, "needs submitit: pip install 'rnnlab[slurm]'") from None
    return submitit


# ----------------------------------------------------------------------------- the job


class TrialJob:
    """What a submitit job runs: one trial's process (``backends.launch``), its exit status returned.
    ``checkpoint`` is submitit's hook on preemption or time-out: stop the trial, requeue its resume."""

    def __init__(self, args: list[str], log: str, threads: int, stop_files: list[str],
                 sweep_dir: str, name: str) -> None:
        self.args, self.log, self.threads, self.stop_files = args, log, threads, stop_files
        self.sweep_dir, self.name = sweep_dir, name
        self.proc: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "proc": None}

    def __call__(self) -> int:
        self.proc = launch(self.args, Path(self.log), self.threads, die_with_parent=True,
                           stop_files=tuple(Path(f) for f in self.stop_files))
        return supervise(self.proc)

    def checkpoint(self) -> Any:
        """Stop the trial (SIGINT: it saves ``last.pt`` and closes its run ``interrupted``) and
        return the job to requeue: ``rnnlab train --resume`` of its run, or the same trial again
        where no checkpoint was written yet; none where the trial had already ended."""
        from submitit.helpers import DelayedSubmission

        if self.proc is not None:
            if self.proc.poll() == 0:
                return None
            stop_group(self.proc)
        run = read_result(result_file(Path(self.sweep_dir), self.name)).get("run")
        args = self.args
        if isinstance(run, str) and (Path(run) / "checkpoints" / "last.pt").is_file():
            args = trial_args(Path(self.sweep_dir), self.name,
                              ["--resume", str(run), "--set", f"train.threads={self.threads}"])
        what = f"resume {run}" if args is not self.args else "start again"
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(f"rnnlab: the job was preempted or timed out; requeued to {what}\n")
        again = TrialJob(args, self.log, self.threads, self.stop_files, self.sweep_dir, self.name)
        return DelayedSubmission(again)


# ----------------------------------------------------------------------------- the backend


class Handle:
    """One trial attempt: queued here until submitted, then its submitit job."""

    def __init__(self, job: TrialJob) -> None:
        self.trial, self.job, self.cancelled = job, None, False  # type: ignore[var-annotated]


class SubmititBackend:
    queues = True  # takes every trial of a grid/random sweep at once (see Driver.loop)

    def __init__(self, options: Any, sweep: Any) -> None:
        self.submitit = require_submitit(f"--backend {options.backend}")
        self.name, self.workers = options.backend, options.workers
        self.resources = {**getattr(sweep, "slurm", {}),
                          **parse_resources(options.slurm, "--slurm", "")}
        self.stop_file: Optional[Path] = None  # set by the driver: <sweep dir>/.stop
        self.pending: list[Handle] = []
        self.submitted: list[Handle] = []
        self._executor: Any = None
        if self.name == "slurm" and shutil.which("sbatch") is None:
            raise ConfigError("--backend slurm", "sbatch not found: run the sweep where Slurm's commands are "
                              "(a login node), or try it here with --backend submitit-local")
        if self.name == "slurm":
            self.threads = self.resources.get("cpus", 1)
            self.cores = self.threads * self.workers  # what the sweep asks for at once
        else:
            self.cores = available_cores()
            self.threads = max(1, self.cores // self.workers)

    def executor(self, cpus: int) -> Any:
        if self._executor is None:
            assert self.stop_file is not None
            cluster = "slurm" if self.name == "slurm" else "local"
            folder = self.stop_file.parent / FOLDER
            self._executor = self.submitit.AutoExecutor(folder=folder, cluster=cluster)
        r = self.resources
        params = {"timeout_min": r.get("time", DEFAULT_MINUTES), "cpus_per_task": r.get("cpus", cpus),
                  "gpus_per_node": r.get("gpus", 0), "slurm_array_parallelism": self.workers,
                  "name": f"rnnlab-{self.stop_file.parent.name}"[:64]}
        if "partition" in r:
            params["slurm_partition"] = r["partition"]
        if "mem" in r:
            params["slurm_mem"] = r["mem"]
        self._executor.update_parameters(**params)
        return self._executor

    def start(self, args: list[str], log: Path, threads: int) -> Handle:
        assert self.stop_file is not None
        sweep_dir = self.stop_file.parent
        stops = [str(self.stop_file), str(own_stop_file(sweep_dir, log.stem))]
        handle = Handle(TrialJob(args, str(log), threads, stops, str(sweep_dir), log.stem))
        self.pending.append(handle)
        return handle

    def submit(self) -> None:
        """Submit the queued trials: all as one job array on Slurm, up to the free slots locally."""
        running = sum(not self.finished(h) for h in self.submitted)
        batch = self.pending if self.name == "slurm" else self.pending[:max(0, self.workers - running)]
        if not batch:
            return
        self.pending = self.pending[len(batch):]
        executor = self.executor(max(h.trial.threads for h in batch))
        with _importable(), executor.batch():
            jobs = [executor.submit(h.trial) for h in batch]
        for handle, job in zip(batch, jobs):
            handle.job = job
        self.submitted += batch

    def finished(self, handle: Handle) -> bool:
        return handle.cancelled or (handle.job is not None and handle.job.done())

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, Optional[int], Optional[str]]]:
        """The trials whose job ended, with the trial's exit status (or why the job failed)."""
        deadline = time.monotonic() + timeout
        while True:
            self.submit()
            done = [(h, *self.outcome(h)) for h in handles if self.finished(h)]
            if done or time.monotonic() >= deadline:
                self.submitted = [h for h in self.submitted if h not in {d[0] for d in done}]
                return done
            time.sleep(0.25)

    def outcome(self, handle: Handle) -> tuple[Optional[int], Optional[str]]:
        if handle.job is None:
            return None, "stopped before it was submitted"
        try:
            return int(handle.job.result()), None
        except Exception as exc:  # noqa: BLE001 - the job failed or was cancelled: a trial failure
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            reason = lines[-1] if lines else type(exc).__name__
            return None, f"submitit job {handle.job.job_id} failed: {reason}"

    def stop_one(self, handle: Handle) -> None:
        """Stop one trial: its own stop file (the trial watches it); one not yet submitted is dropped."""
        if handle.job is None:
            handle.cancelled = True
            self.pending = [h for h in self.pending if h is not handle]
            return
        Path(handle.trial.stop_files[-1]).touch()

    def interrupt(self, handle: Handle) -> None:
        """Stop a trial with the sweep: as ``stop_one``; a job Slurm has not started yet is cancelled."""
        self.stop_one(handle)
        if self.name == "slurm" and handle.job is not None and handle.job.state == "PENDING":
            handle.job.cancel(check=False)

    def kill(self, handle: Handle) -> None:
        if handle.job is not None and not handle.job.done():
            handle.job.cancel(check=False)
        handle.cancelled = True

    def close(self) -> None:
        pass


@contextmanager
def _importable() -> Iterator[None]:
    """Jobs unpickle ``TrialJob``: from a source checkout, put it on the jobs' PYTHONPATH (they
    inherit the environment at submission)."""
    root = str(Path(rnnlab.__file__).resolve().parent.parent)
    before = os.environ.get("PYTHONPATH")
    if "site-packages" not in root and "dist-packages" not in root:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
