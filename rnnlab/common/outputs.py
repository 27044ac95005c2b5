"""One rule for every file rnnlab writes outside a run (``forecast --out`` and its plot, ``export
--out`` and its JSON sidecar, ``gradflow --out`` and its CSV), checked before any work:

- never a file the command reads (its input file, the run's checkpoint): refused even with ``--force``;
- never a file inside a run or sweep directory (a folder holding ``summary.json`` beside
  ``config.yaml`` or ``sweep.yaml``), except under the folder where the command puts its output by
  default (``RUN/export/``, ``RUN/plots/gradflow.png``): those files are rnnlab's own and replaced;
- never silently over an existing file: refused with one line, or replaced with ``--force``;
- never a directory, and no two outputs of one command the same file (``forecast --out x.png``
  would put the plot over the CSV).

Errors name the path the user gave, never a temp file. The files themselves are written through
``common.atomic.atomic_write`` (a temp file beside the target, always removed on failure) or, for writers
that want a path (``torch.onnx.export``), ``temp_path``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from rnnlab.errors import RnnlabError

RUN_MARKERS = (("summary.json", "config.yaml"), ("summary.json", "sweep.yaml"))


class OutputError(RnnlabError):
    """An output path that would break the rule above."""


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def run_folder_of(path: Path) -> Optional[Path]:
    """The run or sweep directory ``path`` lies in (the nearest one above it), if any."""
    for folder in Path(path).resolve().parents:
        if any(all((folder / name).is_file() for name in marker) for marker in RUN_MARKERS):
            return folder
    return None


def check_outputs(paths: Sequence[Path], where: str = "--out", inputs: Iterable[Path] = (),
                  force: bool = False, own: Optional[Path] = None) -> list[Path]:
    """``paths`` (one command's outputs, the one the user named first) checked against the rule;
    ``own`` is the folder in a run where this command's default outputs go. Raises ``OutputError``
    naming ``paths[0]`` as the user gave it."""
    paths = [Path(p) for p in paths]
    user = paths[0]
    for i, path in enumerate(paths):
        what = "" if i == 0 else f" ({path.name}, written beside it)"
        if path.is_dir():
            raise OutputError(f"{where}: {user}", f"is a directory{what}; give a file name")
        if any(path.resolve() == other.resolve() for other in paths[:i]):
            raise OutputError(f"{where}: {user}", f"the file and the one written beside it{what} "
                              f"would be the same file; give another suffix")
        for source in inputs:
            if _same(path, Path(source)) or path.resolve() == Path(source).resolve():
                raise OutputError(f"{where}: {user}", f"is the file this command reads{what} ({source}); "
                                  "give another file")
        mine = own is not None and path.resolve().is_relative_to(Path(own).resolve())
        run = None if mine else run_folder_of(path)
        if run is not None:
            raise OutputError(f"{where}: {user}", f"lies inside the run directory {run}{what}; rnnlab "
                              "keeps its own files there: write elsewhere")
        if path.exists() and not force and not mine:
            raise OutputError(f"{where}: {user}", f"already exists{what}; give --force to replace it")
        if path.is_symlink() and not path.exists():
            raise OutputError(f"{where}: {user}", f"is a dangling symbolic link{what}")
    return paths


def with_companion(path: Path, suffix: str = "", add: str = "", where: str = "--out") -> list[Path]:
    """``path`` and the file a command writes beside it: ``suffix`` in place of its suffix, or
    ``add`` after its name (``x.onnx`` -> ``x.onnx.json``). A path without a file name (``.``,
    ``..``, ``/``, an empty argument) is refused as the directory it names."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise OutputError(f"{where}: {path}", "is a directory; give a file name")
    return [path, path.with_suffix(suffix) if suffix else path.with_name(path.name + add)]


@contextlib.contextmanager
def writing(path: Path, where: str = "--out") -> Iterator[None]:
    """An OSError inside the block (permissions, a full disk) as one line naming ``path``."""
    from rnnlab.common.safeio import disk_full_error, is_disk_full

    try:
        yield
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, exc) from None
        raise OutputError(f"{where}: {path}", f"cannot write: {exc.strerror or exc}") from None


@contextlib.contextmanager
def temp_path(path: Path, where: str = "--out") -> Iterator[Path]:
    """A temp file name beside ``path`` for a writer that takes a path; removed whatever happens
    (the caller renames it onto ``path`` inside the block when it is good); errors name ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with writing(path, where):
            yield tmp
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


__all__ = ["OutputError", "check_outputs", "run_folder_of", "temp_path", "writing"]
