"""Stopping a run on SIGINT (Ctrl-C) or SIGTERM (``kill``, cluster schedulers) without losing it.

The first signal only asks the trainer to stop: it finishes the current step, saves a checkpoint,
marks the run ``interrupted`` and the CLI exits 128 + the signal (130 / 143). A second signal
leaves at once: every file rnnlab writes is replaced atomically (or appended one whole line at a
time), so dying anywhere leaves the previous version of each file intact.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Iterator, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM outside training (set-up, final evaluation, other commands): raised at
    once by the handlers ``install_stop_handlers`` sets, so every ``finally``/cleanup runs and the
    command ends with one ``interrupted:`` line and 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, frame: Optional[FrameType]) -> None:
    raise Stopped(signum)


def install_stop_handlers() -> None:
    """For the command line (``cli.main``): SIGINT and SIGTERM raise ``Stopped`` wherever the
    process is, instead of SIGTERM's default of dying without a word. Training replaces them
    with ``GracefulStop`` while it runs. Only the main thread can install handlers."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _raise_stopped)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while a few statements that must happen together run (creating a
    run directory and recording it, writing the final summary): a signal received meanwhile is
    handed to the handler that was in place once they are done. (Python-level, not
    ``pthread_sigmask``: a process-directed signal may land on any thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            handler = previous[received[0]]
            if callable(handler):
                handler(received[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), received[0])


def exit_status(signum: Optional[int]) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + (signum or signal.SIGINT)


class GracefulStop:
    """Context manager: while active, SIGINT/SIGTERM call ``request_stop`` (once); ``signum`` is
    the signal received, if any. Only the main thread can install handlers; elsewhere (a sweep's
    worker thread) it does nothing and the default behaviour stays."""

    def __init__(self, request_stop: Callable[[], None]) -> None:
        self.request_stop = request_stop
        self.signum: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.signum is not None:  # the second signal: leave now, show the cursor rich may hide
            if os.isatty(1):
                os.write(1, b"\x1b[?25h\n")
            os._exit(exit_status(signum))
        self.signum = signum
        self.request_stop()
        name = signal.Signals(signum).name
        again = "Ctrl-C" if signum == signal.SIGINT else name
        try:
            print(f"{name}: stopping after this step and saving a checkpoint "
                  f"({again} again to quit at once)", file=sys.stderr, flush=True)
        except (RuntimeError, OSError):  # stderr busy (reentrant write) or closed: the stop still happens
            pass
