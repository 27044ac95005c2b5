"""Where trials run. Every trial is a normal ``rnnlab train`` process (its own run directory,
``--quiet``, ``train.threads`` set so that trials x threads <= cores); a backend starts such
processes, reports when they exit and can stop them.

- ``local``: child processes of the sweep, N at a time.
- ``ray``: the same processes, started by Ray tasks on a local Ray instance or an existing cluster
  (``pip install 'rnnlab[ray]'``). The sweep directory must be on a filesystem the nodes share.
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

from ..errors import ConfigError
from ..runtime import available_cores
from .trial import PARENT_ENV, STOP_FILE_ENV

STOP_GRACE_S = 60.0  # how long an interrupted trial may take to write its summary


RESULTS = "results"  # in the sweep directory: <run name>.json per trial attempt (see ``trial``)


def result_file(sweep_dir: Path, name: str) -> Path:
    return sweep_dir / RESULTS / f"{name}.json"


def trial_args(sweep_dir: Path, name: str, args: list[str], threads: int) -> list[str]:
    """A trial's command line after the Python interpreter: ``rnnlab train ARGS`` (see ``trial``)."""
    result = result_file(sweep_dir, name)
    result.parent.mkdir(exist_ok=True)
    result.unlink(missing_ok=True)
    return ["-m", "rnnlab.sweeps.trial", "--result", str(result), *args, "--quiet",
            "--set", f"train.threads={threads}"]


def train_args(config: Path, runs_dir: Path, name: str, threads: int) -> list[str]:
    """A new trial: ``rnnlab train CONFIG --runs-dir SWEEP_DIR --name NAME`` (``runs_dir`` is the
    sweep directory)."""
    return trial_args(runs_dir, name, [str(config), "--runs-dir", str(runs_dir), "--name", name], threads)


def child_env(threads: int, stop_file: Optional[Path], die_with_parent: bool) -> dict[str, str]:
    """Pin the thread pools to the trial's share of the cores; tell the trial how it is stopped
    (see ``trial``); make it import this very rnnlab when it runs from a source checkout."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.pop(STOP_FILE_ENV, None)
    env.pop(PARENT_ENV, None)
    if stop_file is not None:
        env[STOP_FILE_ENV] = str(stop_file)
    if die_with_parent:
        env[PARENT_ENV] = str(os.getpid())
    root = str(Path(rnnlab.__file__).resolve().parent.parent)
    if "site-packages" not in root and "dist-packages" not in root:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def launch(args: list[str], log: Path, threads: int, die_with_parent: bool = False,
           stop_file: Optional[Path] = None) -> subprocess.Popen:
    """Start ``python ARGS`` with output to ``log``, in its own session: a Ctrl-C at the terminal
    reaches the sweep alone, which then stops its trials in order."""
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, *args], stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            env=child_env(threads, stop_file, die_with_parent), start_new_session=True)


class LocalBackend:
    name = "local"
    stop_file: Optional[Path] = None  # unused: local trials are signalled directly

    def __init__(self, workers: int) -> None:
        self.cores = available_cores()
        self.threads = max(1, self.cores // workers)

    def start(self, args: list[str], log: Path) -> subprocess.Popen:
        return launch(args, log, self.threads, die_with_parent=True)

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

    def kill(self, handle: subprocess.Popen) -> None:
        if handle.poll() is None:
            handle.kill()
            handle.wait()

    def close(self) -> None:
        pass


def run_on_node(args: list[str], log: str, threads: int, stop_file: str) -> int:
    """The Ray task: run the trial's process on this node and return its exit status. The trial
    watches the stop file itself (``trial``); a cancelled task passes SIGINT on."""
    proc = launch(args, Path(log), threads, stop_file=Path(stop_file))
    try:
        return proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


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
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:
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
        self.task = ray.remote(run_on_node).options(num_cpus=self.threads, max_retries=0)

    def start(self, args: list[str], log: Path) -> Any:
        return self.task.remote(args, str(log), self.threads, str(self.stop_file))

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

    def kill(self, handle: Any) -> None:
        self.ray.cancel(handle, force=True)

    def close(self) -> None:
        self.ray.shutdown()
