"""One sweep trial: ``python -m rnnlab.sweep.trial ARGS`` is ``rnnlab train ARGS``, made stoppable.

The sweep stops a trial by SIGINT (the run then closes as ``interrupted``). A process started by a
Ray worker inherits SIGINT ignored, and a signal sent before the handler is back would be lost, so
the handler is restored first thing, and where the sweep names a stop file (Ray: the sweep
directory is shared with the nodes) a watcher raises KeyboardInterrupt once it appears, however
early or late that is."""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from pathlib import Path

STOP_FILE_ENV = "RNNLAB_SWEEP_STOP_FILE"


def watch(stop_file: Path, every: float = 0.25) -> None:
    while not stop_file.exists():
        time.sleep(every)
    _thread.interrupt_main()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get(STOP_FILE_ENV):
        threading.Thread(target=watch, args=(Path(os.environ[STOP_FILE_ENV]),), daemon=True).start()
    from ..cli import main

    sys.argv = ["rnnlab", "train", *sys.argv[1:]]
    main()
