"""The preloaded launcher of the local backend: one long-lived process (``python -m
rnnlab.cli.trial --serve``) imports torch and rnnlab once, then forks one child per trial, so a
trial no longer pays the interpreter's start and torch's import (seconds) each time.

The server runs no torch operation and starts no thread before it forks. Each child sets up what a
fresh trial process has: its own session, stdin from /dev/null, stdout and stderr to the trial's
log, the sweep's working directory, the environment ``backends.child_env`` gives a trial (its
threads, how it is stopped), default signal handlers, and then runs the trial exactly as ``python -m
rnnlab.cli.trial ARGS`` does (``trial.run``), exiting with the status that process would have.

Protocol, one JSON object a line: the sweep writes ``{"args", "log", "env", "cwd"}``; the server
answers ``{"ready": pid}`` once, ``{"started": pid}`` per trial and ``{"exit": pid, "code": c}``
(``Popen.returncode``'s convention: minus the signal when a signal ended it) as trials end. The
server dies with the sweep (SIGKILL on its death, Linux) and its trials then get SIGINT as local
trials always do (``trial.die_with_parent``). ``RNNLAB_SWEEP_FORK=0`` (or a platform without
``fork``) keeps the old path: one fresh ``python`` process per trial.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from rnnlab.sweeps.trialenv import SERVE, TRIAL_MODULE

FORK_ENV = "RNNLAB_SWEEP_FORK"
READY_TIMEOUT_S = 300.0  # the server's imports; a server not ready by then is given up for the old path


def available() -> bool:
    """Whether trials may be forked from a preloaded server here (Linux only: macOS forks badly
    once torch's libraries are loaded)."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and os.environ.get(FORK_ENV, "1").strip().lower() not in ("0", "false", "no", "off"))


# ----------------------------------------------------------------------------- the server


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def preload() -> None:
    """What every trial imports anyway, and matplotlib's font caches warmed by drawing one small
    figure in memory. Nothing here runs a torch operation or starts a thread (the forked children
    would inherit a thread pool without its threads)."""
    import io

    import torch  # noqa: F401
    import torch.nn  # noqa: F401
    import torch.optim  # noqa: F401

    import rnnlab.common.allocator  # noqa: F401
    import rnnlab.common.plots as plots
    import rnnlab.execution.distributed  # noqa: F401
    import rnnlab.execution.lifecycle  # noqa: F401
    import rnnlab.integrations.mlflow_logging  # noqa: F401
    import rnnlab.integrations.tensorboard  # noqa: F401
    import rnnlab.rundir.readback  # noqa: F401
    import rnnlab.training.trainer  # noqa: F401
    from rnnlab.registry import MODELS, TASKS

    TASKS.names(), MODELS.names()  # the built-in tasks and models, registered
    fig, ax = plots.plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [1.0, 0.5, 0.25], label="loss")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.set_title("warm-up"), ax.legend()
    fig.savefig(io.BytesIO(), format="png", dpi=110)


def serve(run: Callable[[list[str]], None]) -> None:
    """The server's loop: fork a child running ``run(args)`` per request, report exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopped by its stdin closing, or with the sweep
    parent = os.environ.get("RNNLAB_SWEEP_PARENT")
    if parent:
        _die_with(int(parent))
    out = os.dup(1)  # the protocol's channel; stray prints go to /dev/null, not into it
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    preload()
    _send(out, {"ready": os.getpid()})
    pending = b""
    children: set[int] = set()
    open_ = True
    while open_ or children:
        ready = select.select([0], [], [], 0.05)[0] if open_ else (time.sleep(0.05) or [])
        if ready:
            chunk = os.read(0, 65536)
            if not chunk:
                open_ = False  # the sweep is done with us: finish the trials still running, then exit
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                sys.stdout.flush(), sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request, run, out)  # never returns
                children.add(pid)
                _send(out, {"started": pid})
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            children.discard(pid)
            _send(out, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _die_with(parent: int) -> None:
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def _child(request: dict[str, Any], run: Callable[[list[str]], None], channel: int) -> None:
    """In the forked child: become a fresh trial process, run the trial, exit as it would."""
    code = 1
    try:
        os.close(channel)
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0), os.dup2(log, 1), os.dup2(log, 2)
        os.close(log), os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["RNNLAB_SWEEP_PARENT"] = str(os.getppid())  # the server: its death stops the trial
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        args = list(request["args"])
        if args[:2] == ["-m", TRIAL_MODULE]:
            args = args[2:]
        sys.argv = [sys.argv[0], *args]
        try:
            run(args)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except KeyboardInterrupt:  # as an interpreter does: the traceback, then death by SIGINT
            traceback.print_exc()
            _finish()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:  # noqa: BLE001 - an uncaught error: the traceback and status 1
            traceback.print_exc()
            code = 1
        _finish()
    finally:
        os._exit(code)


def _exit_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _finish() -> None:
    """What an interpreter does at exit: wait for non-daemon threads, run the atexit hooks, flush."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        pass
    try:
        atexit._run_exitfuncs()
    except Exception:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


# ----------------------------------------------------------------------------- the sweep's side

_early: list["Server"] = []  # started by ``start_early``, not yet taken by a backend


def server_env() -> dict[str, str]:
    """The server's environment: this process's, one thread (it runs no torch operation; each
    trial sets its own), its death tied to this process, this very rnnlab importable."""
    from rnnlab.sweeps.trialenv import PARENT_ENV, STOP_FILE_ENV

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop(STOP_FILE_ENV, None)
    env[PARENT_ENV] = str(os.getpid())
    root = str(Path(__file__).resolve().parents[2])
    if "site-packages" not in root and "dist-packages" not in root:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def start_early() -> None:
    """Start the server before this process imports torch itself (``rnnlab sweep`` on the local
    backend), so that the two imports overlap; a backend takes it with ``take``."""
    if available() and not _early:
        try:
            _early.append(Server(server_env()))
        except OSError:
            return
        atexit.register(drop_early)


def take() -> Optional["Server"]:
    """The server ``start_early`` started, or a new one."""
    return _early.pop() if _early else Server(server_env())


def drop_early() -> None:
    """Stop a server ``start_early`` started that no backend took."""
    while _early:
        _early.pop().close()



class ForkedTrial:
    """A forked trial as the driver sees a ``subprocess.Popen``: ``pid``, ``poll``, ``wait``,
    ``send_signal``, ``kill``, ``returncode``."""

    def __init__(self, server: "Server", pid: int) -> None:
        self.server, self.pid = server, pid
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self.server.pump(0)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"trial {self.pid}", timeout or 0)
            self.server.pump(0.05)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not reaped yet: the pid is still this trial's
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Server:
    """The sweep's handle on the server process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", TRIAL_MODULE, SERVE],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.trials: dict[int, ForkedTrial] = {}
        self.started: list[int] = []
        self.pid: Optional[int] = None
        self.alive = True

    def ready(self) -> None:
        """Wait for its imports (started in the background of the sweep's own set-up)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.alive and self.pid is None and time.monotonic() < deadline:
            self.pump(0.5)
        if self.pid is None:
            self.alive = False
            raise OSError("the preloaded trial launcher did not start")

    def start(self, args: list[str], log: Path, env: dict[str, str]) -> ForkedTrial:
        self.ready()
        request = {"args": args, "log": str(log), "env": env, "cwd": os.getcwd()}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.alive = False
            raise OSError("the preloaded trial launcher has exited") from None
        while self.alive and not self.started:
            self.pump(0.5)
        if not self.started:
            raise OSError("the preloaded trial launcher has exited")
        return self.trials[self.started.pop(0)]

    def pump(self, timeout: float) -> None:
        """Read what the server has said, waiting up to ``timeout`` s for something."""
        if not self.alive:
            return
        while select.select([self.fd], [], [], timeout)[0]:
            timeout = 0
            chunk = os.read(self.fd, 65536)
            if not chunk:  # the server died: its trials died with it (SIGINT, see ``serve``)
                self.alive = False
                for trial in self.trials.values():
                    if trial.returncode is None:
                        trial.returncode = -signal.SIGKILL
                return
            self.buffer += chunk
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                self.handle(json.loads(line))

    def handle(self, message: dict[str, Any]) -> None:
        if "ready" in message:
            self.pid = int(message["ready"])
        elif "started" in message:
            pid = int(message["started"])
            self.trials.setdefault(pid, ForkedTrial(self, pid))
            self.started.append(pid)
        elif "exit" in message:
            pid = int(message["exit"])
            self.trials.setdefault(pid, ForkedTrial(self, pid)).returncode = int(message["code"])

    def close(self) -> None:
        """Close its stdin (it exits once its trials have); kill it if it lingers or never ran one."""
        if not self.trials and self.proc.poll() is None:
            self.proc.kill()
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
