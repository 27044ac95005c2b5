"""Whole-file writes: a temp file beside the target, fsync, rename, fsync of the folder, so a crash
never leaves a half-written file behind; a full disk is one line naming the file (the temp file
removed). The run directory's writers (``rnnlab.rundir.files``) and figures use it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from rnnlab.common.safeio import disk_full_error, guard_disk_full, is_disk_full


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask_mode() -> int:
    """The mode ``open()`` would give a new file (mkstemp's own 0600 would hide runs from others)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _umask_mode()


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb", durable: bool = True) -> None:
    """Write through ``write(fileobj)`` into a temp file beside ``path``, fsync, then rename.
    ``durable=False`` (files made again from the run's records, e.g. plots): no fsync of the file
    or its directory; still whole or absent after a crash of the process, which is all they need."""
    path = Path(path)
    guard_disk_full(path, lambda: path.parent.mkdir(parents=True, exist_ok=True))
    fd, tmp = guard_disk_full(path, lambda: tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                                             dir=path.parent))
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        full = is_disk_full(exc, tmp)  # before the temp file's blocks are freed again
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if full:
            raise disk_full_error(path, exc) from None
        raise
    if durable:
        fsync_dir(path.parent)
