"""Where trials run. Every trial is a normal ``rnnlab train`` process (its own run directory,
``--quiet``, its ``train.threads`` in its config, see ``runner.trial_threads``); a backend starts
such processes, reports when they exit and can stop them.

- ``local``: child processes of the sweep, N at a time.
- ``ray``: the same processes, started by Ray tasks on a local Ray instance or an existing cluster
  (``pip install 'rnnlab[ray]'``). The sweep directory must be on a filesystem the nodes share.
- ``slurm`` / ``submitit-local``: submitit jobs (``submitit_backend``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import rnnlab
from rnnlab.errors import ConfigError
from rnnlab.sweeps import forking
from rnnlab.sweeps.trialenv import PARENT_ENV, STOP_FILE_ENV, TRIAL_MODULE
from rnnlab.training.runtime import available_cores

STOP_GRACE_S = 60.0  # how long an interrupted trial may take to write its summary


RESULTS = "results"  # in the sweep directory: <run name>.json per trial attempt (see ``trial``)


def result_file(sweep_dir: Path, name: str) -> Path:
    return sweep_dir / RESULTS / f"{name}.json"


def trial_args(sweep_dir: Path, name: str, args: list[str]) -> list[str]:
    """A trial's command line after the Python interpreter: ``rnnlab train ARGS`` (see ``trial``)."""
    result = result_file(sweep_dir, name)
    result.parent.mkdir(exist_ok=True)
    result.unlink(missing_ok=True)
    return ["-m", TRIAL_MODULE, "--result", str(result), *args, "--quiet"]


def train_args(config: Path, runs_dir: Path, name: str) -> list[str]:
    """A new trial: ``rnnlab train CONFIG --runs-dir SWEEP_DIR --name NAME`` (``runs_dir`` is the
    sweep directory; the trial's config holds its threads)."""
    return trial_args(runs_dir, name, [str(config), "--runs-dir", str(runs_dir), "--name", name])


def own_stop_file(sweep_dir: Path, name: str) -> Path:
    """The file that stops one trial attempt alone (pruning); ``<sweep dir>/.stop`` stops them all."""
    return sweep_dir / RESULTS / f"{name}.stop"


def child_env(threads: int, stop_files: list[Path], die_with_parent: bool) -> dict[str, str]:
    """Pin the thread pools to the trial's threads; tell the trial how it is stopped (see
    ``trial``); make it import this very rnnlab when it runs from a source checkout."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.pop(STOP_FILE_ENV, None)
    env.pop(PARENT_ENV, None)
    if stop_files:
        env[STOP_FILE_ENV] = os.pathsep.join(str(f) for f in stop_files)
    if die_with_parent:
        env[PARENT_ENV] = str(os.getpid())
    root = str(Path(rnnlab.__file__).resolve().parent.parent)
    if "site-packages" not in root and "dist-packages" not in root:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def launch(args: list[str], log: Path, threads: int, die_with_parent: bool = False,
           stop_files: tuple[Path, ...] = ()) -> subprocess.Popen:
    """Start ``python ARGS`` with output to ``log``, in its own session: a Ctrl-C at the terminal
    reaches the sweep alone, which then stops its trials in order."""
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, *args], stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            env=child_env(threads, list(stop_files), die_with_parent), start_new_session=True)


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the trial's process group (it leads its own session: see ``launch``), so
    processes it started stop with it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def supervise(proc: subprocess.Popen) -> int:
    """Wait for a trial's process in short polls, so that an interrupt of this Python thread (a
    cancelled Ray task, a signal handler) is taken at once; on any such exception stop the trial's
    process group: SIGINT (it saves its checkpoint and closes its run), SIGKILL after the grace."""
    try:
        while True:
            try:
                return proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
    except BaseException:
        stop_group(proc)
        raise


def stop_group(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGINT to the trial's process group, SIGKILL to it if the trial has not exited after ``grace``."""
    signal_group(proc, signal.SIGINT)
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    signal_group(proc, signal.SIGKILL)
    proc.wait()


class LocalBackend:
    """Trials as child processes of the sweep: forked from a preloaded server where possible
    (``forking``: no interpreter start or torch import per trial), else one fresh process each."""

    name = "local"
    stop_file: Optional[Path] = None  # unused: local trials are signalled directly

    def __init__(self, workers: int) -> None:
        self.cores = available_cores()
        self.threads = max(1, self.cores // workers)
        self.server: Any = None
        self.forking = forking.available()

    def start(self, args: list[str], log: Path, threads: int) -> Any:
        if self.forking:
            try:
                if self.server is None:
                    self.prepare()
                return self.server.start(args, log, child_env(threads, [], die_with_parent=True))
            except OSError:  # no server (or it died): the old path for this trial and the rest
                self.forking = False
                if self.server is not None:
                    self.server.close()
                    self.server = None
        return launch(args, log, threads, die_with_parent=True)

    def prepare(self) -> None:
        """Start the preloaded server now, so its imports overlap the sweep's own set-up."""
        if self.forking and self.server is None:
            try:
                self.server = forking.take()
            except OSError:
                self.forking = False

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, Optional[int], Optional[str]]]:
        """The handles whose process exited, with exit status, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            done = [(h, h.poll(), None) for h in handles if h.poll() is not None]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)

    def interrupt(self, handle: subprocess.Popen) -> None:
        if handle.poll() is None:
            handle.send_signal(signal.SIGINT)

    stop_one = interrupt  # one trial (pruning): the same SIGINT

    def kill(self, handle: subprocess.Popen) -> None:
        if handle.poll() is None:
            handle.kill()
            handle.wait()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def run_on_node(args: list[str], log: str, threads: int, stop_files: list[str]) -> int:
    """The Ray task: run the trial's process on this node and return its exit status. The trial
    watches the stop files itself (``trial``) and dies with this worker; a cancelled task
    (``ray.cancel``, which interrupts the worker's Python between two polls) stops the trial's
    process group (``supervise``)."""
    proc = launch(args, Path(log), threads, die_with_parent=True, stop_files=tuple(map(Path, stop_files)))
    return supervise(proc)


class RayBackend:
    name = "ray"

    def __init__(self, workers: int, address: Optional[str]) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray", "Ray is not installed; pip install 'rnnlab[ray]'") from None
        import logging

        self.ray = ray
        self.stop_file: Optional[Path] = None  # set by the driver: <sweep dir>/.stop
        self.owned = not ray.is_initialized()  # a Ray this process already runs is used, and kept
        try:
            if self.owned and address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            elif self.owned:
                ray.init(num_cpus=available_cores(), include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"--ray-address {address}" if address else "--backend ray"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(where, f"cannot start or reach Ray: {reason}") from None
        total = int(ray.cluster_resources().get("CPU", 1))
        per_node = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")),
                       default=total)
        self.cores = total
        # one trial never asks for more than a node has, else Ray could never place it
        self.threads = max(1, min(per_node, total // workers))
        self.per_node = per_node
        self.task = ray.remote(run_on_node)

    def start(self, args: list[str], log: Path, threads: int) -> Any:
        """One Ray task for the trial, asking for its threads as CPUs (at most a node's)."""
        assert self.stop_file is not None
        return self.task.options(num_cpus=min(threads, self.per_node), max_retries=0).remote(
            args, str(log), threads, [str(self.stop_file)])

    def wait(self, handles: list[Any], timeout: float) -> list[tuple[Any, Optional[int], Optional[str]]]:
        if not handles:
            return []
        ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=timeout)
        done = []
        for ref in ready:
            try:
                done.append((ref, int(self.ray.get(ref)), None))
            except Exception as exc:  # noqa: BLE001 - the task or its worker died: a trial failure
                text = str(exc).strip().splitlines()
                done.append((ref, None, f"Ray task failed: {text[0] if text else type(exc).__name__}"))
        return done

    def interrupt(self, handle: Any) -> None:
        assert self.stop_file is not None
        self.stop_file.touch()

    def stop_one(self, handle: Any) -> None:
        """Stop one trial (pruning): the cancelled task stops its process group (``supervise``)."""
        self.ray.cancel(handle, force=False)

    def kill(self, handle: Any) -> None:
        self.ray.cancel(handle, force=True)

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()
