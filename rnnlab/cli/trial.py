"""One sweep trial: ``python -m rnnlab.cli.trial ARGS`` is ``rnnlab train ARGS``, made stoppable.

The sweep stops a trial by SIGINT (the run then closes as ``interrupted``). A process started by a
Ray worker inherits SIGINT ignored and blocked, and a signal sent before the handler is back would
be lost, so SIGINT is unblocked and its handler restored first thing. Then, as the sweep asks
through the environment:
- local trials get SIGINT when the sweep process dies, even by SIGKILL (Linux), so none runs on
  unwatched;
- Ray and submitit trials watch stop files in the shared sweep directory (the sweep's, and for
  submitit the trial's own, see ``backends.own_stop_file``) and stop once one appears, however
  early or late that is.
``--result FILE`` first: the trial writes its run directory (as soon as it exists) and its one-line
error there (``rnnlab.common.invocation.report``), which the sweep reads.
"""

from __future__ import annotations

import _thread
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

from rnnlab.common.invocation import RESULT_FILE_ENV
from rnnlab.sweeps.trialenv import PARENT_ENV, SERVE, STOP_FILE_ENV

PR_SET_PDEATHSIG = 1


def watch(stop_files: list[Path], every: float = 0.25) -> None:
    """Interrupt the main thread (as Ctrl-C does) once any of the stop files exists."""
    while not any(f.exists() for f in stop_files):
        time.sleep(every)
    _thread.interrupt_main()


def die_with_parent(parent: int) -> None:
    """SIGINT to this process when ``parent`` exits. Set here rather than in a ``preexec_fn``: that
    would make every fork in the sweep run Python at-fork hooks, where a Ctrl-C is swallowed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the sweep died before we asked
        os.kill(os.getpid(), signal.SIGINT)


def run(args: list[str]) -> None:
    """The trial itself, after ``-m rnnlab.cli.trial``: ``rnnlab train ARGS``, made stoppable."""
    if hasattr(signal, "pthread_sigmask"):  # a Ray worker's thread blocks SIGINT; the trial inherits that
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get(PARENT_ENV):
        die_with_parent(int(os.environ[PARENT_ENV]))
    if os.environ.get(STOP_FILE_ENV):
        files = [Path(f) for f in os.environ[STOP_FILE_ENV].split(os.pathsep) if f]
        threading.Thread(target=watch, args=(files,), daemon=True).start()
    if args[:1] == ["--result"]:  # the file this trial reports its run and its error to
        os.environ[RESULT_FILE_ENV] = args[1]
        args = args[2:]
    from rnnlab.cli import main

    sys.argv = ["rnnlab", "train", *args]
    main()


if __name__ == "__main__":
    if sys.argv[1:] == [SERVE]:
        from rnnlab.sweeps.forking import serve

        serve(run)
    else:
        run(sys.argv[1:])
