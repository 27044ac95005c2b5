"""Keep freed memory in the process (glibc on Linux), so a training step does not fault its
activations in again page by page every step.

glibc's ``malloc`` serves a large block (above a threshold that starts at 128 KiB) with a fresh
``mmap`` and gives it back to the system on ``free``, and trims the heap's top once more than
twice that threshold is free. A training step allocates the same large activation and gradient
tensors every step, so each one costs a page fault per 4 KiB page, every step: on the
development VM that was over a third of the CPU time of a minGRU step at T = 784 (system time).
``keep_freed_memory`` fixes the thresholds at glibc's maximum (32 MiB for ``mmap``, 1 GiB for
trimming): blocks up to 32 MiB are reused from the heap. The process keeps its peak heap instead
of returning it between steps. ``RNNLAB_MALLOC=system`` leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30
_done: list[bool] = []


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when they are in effect."""
    if _done:
        return _done[0]
    ok = False
    if os.environ.get("RNNLAB_MALLOC", "").lower() != "system" and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _done.append(ok)
    return ok
