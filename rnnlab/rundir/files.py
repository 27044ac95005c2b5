"""The run directory, the unit of truth: ``config.yaml``, ``metrics.jsonl``, ``summary.json``,
``checkpoints/{last,best}.pt``, ``plots/``. Every file is written whole (temp file, fsync, rename)
or appended one whole line at a time, so a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import pickle
import re
import stat
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import torch

from rnnlab.common.atomic import atomic_write
from rnnlab.common.safeio import guard_disk_full
from rnnlab.common.signals import deferred
from rnnlab.config.names import name_problem
from rnnlab.errors import RnnlabError, RunDirError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
PLOTS = "plots"


# ----------------------------------------------------------------------------- atomic files


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json(path: Path, obj: Any) -> None:
    """Atomically; on a full disk, a file already there is overwritten in place when the new
    text fits in the blocks it already holds (padded with spaces, still valid JSON), so a run can
    still be marked failed when not one free block is left."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    try:
        write_text(path, text)
    except RnnlabError as exc:
        if "no space left" not in exc.what or not _overwrite_in_place(Path(path), text.encode("utf-8")):
            raise


def _overwrite_in_place(path: Path, data: bytes) -> bool:
    """Write ``data`` over ``path`` without allocating blocks; False when it cannot fit."""
    try:
        st = path.stat()
        room = max(st.st_size, getattr(st, "st_blocks", 0) * 512)
        if not path.is_file() or len(data) > room:
            return False
        if len(data) < st.st_size:  # same length as before: JSON allows trailing spaces
            data = data[:-1] + b" " * (st.st_size - len(data)) + b"\n"
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


def save_torch(path: Path, obj: Any) -> None:
    atomic_write(path, lambda fh: torch.save(obj, fh))


def append_jsonl(path: Path, obj: Any) -> None:
    """One whole line in a single write(); a power cut can only tear the last line."""
    line = json.dumps(obj, default=_json_default) + "\n"

    def append() -> None:
        with open(path, "ab") as fh:
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

    guard_disk_full(path, append)


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Replace a JSON-lines file as a whole (atomically)."""
    write_text(path, "".join(json.dumps(row, default=_json_default) + "\n" for row in rows))


def remove_stale_temp_files(run_dir: Path) -> None:
    """Temp files left by a process killed mid-write (``atomic_write`` names them ``.<name>.*.tmp``);
    the files they were meant to replace are intact."""
    for folder in (run_dir, run_dir / CHECKPOINTS, run_dir / PLOTS):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete lines. A torn last line (no final newline: the process died mid-write) is
    dropped; a broken line in the middle is corruption and an error."""
    path = Path(path)
    if not path.exists():
        return []
    from rnnlab.common.safeio import MAX_DATA_BYTES, read_bytes_bounded

    raw = read_bytes_bounded(path, MAX_DATA_BYTES, path.name, RunDirError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RunDirError(path, f"line {line} is not valid UTF-8 text (byte {exc.start})") from None
    complete, _, _torn = text.rpartition("\n")
    rows = []
    for number, line in enumerate(complete.split("\n") if complete else [], 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
            raise RunDirError(path, f"line {number} is not valid JSON") from None
    return rows


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ----------------------------------------------------------------------------- run directories

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    cleaned = _SAFE.sub("-", name).strip(".-") or "run"
    return cleaned[:80]


def check_name(name: str, where: str = "--name") -> str:
    """The run name rule of ``rnnlab.config.names``: refused names are an error naming ``where``."""
    problem = name_problem(name)
    if problem is not None:
        raise RnnlabError(where, f"invalid run name {name[:60]!r}: {problem}")
    return name


def check_runs_dir(runs_dir: Path) -> Path:
    """Fail early, before anything is written, when ``--runs-dir`` cannot hold run directories."""
    runs_dir = Path(runs_dir)
    for parent in (runs_dir, *runs_dir.parents):
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(runs_dir, f"cannot be the runs directory: {parent} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise RunDirError(runs_dir, f"cannot be the runs directory: {parent} is not writable")
            return runs_dir
    return runs_dir


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` resolves (symlinks, ``..``) to somewhere under ``folder``."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def create_run_dir(runs_dir: Path, name: str, now: datetime | None = None,
                   subdirs: tuple[str, ...] = (CHECKPOINTS, PLOTS)) -> Path:
    """``runs_dir/<UTC timestamp>_<name>``, with ``-2``, ``-3``... when taken; never reused."""
    runs_dir = check_runs_dir(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RnnlabError(runs_dir, f"cannot create the runs directory: {exc.strerror}") from None
    if not runs_dir.is_dir():
        raise RnnlabError(runs_dir, "runs directory is not a directory")
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}_{safe_name(name)}"
    for attempt in range(1, 10_000):
        path = runs_dir / (base if attempt == 1 else f"{base}-{attempt}")
        if not inside(path, runs_dir) or path.resolve().parent != runs_dir.resolve():
            raise RunDirError(path, f"run directory would not be directly inside {runs_dir}")
        with deferred():  # created and recorded together: a signal cannot leave it unrecorded
            try:
                guard_disk_full(path, path.mkdir)
            except FileExistsError:
                continue
            _setting_up.append(path)
        for sub in subdirs:
            guard_disk_full(path / sub, (path / sub).mkdir)
        return path
    raise RnnlabError(runs_dir, "could not find a free run directory name")


# run directories this process created whose set-up has not finished: a failure or a signal
# before training starts removes them, so no directory is left that is not a run
_setting_up: list[Path] = []


def setup_done(run_dir: Path) -> None:
    """The run now has its summary and trains: it stays, whatever happens next."""
    with deferred():
        if run_dir in _setting_up:
            _setting_up.remove(run_dir)


def discard_unfinished_runs() -> None:
    """Remove the run directories this process created and did not finish setting up."""
    import shutil

    with deferred():
        while _setting_up:
            shutil.rmtree(_setting_up.pop(), ignore_errors=True)


def find_run(run: str | os.PathLike[str], runs_dir: Path) -> Path:
    """A run given as a path, or as a bare run id under ``runs_dir``. An id must stay inside
    ``runs_dir`` (a symlinked entry pointing elsewhere is refused)."""
    path = Path(run)
    if len(path.parts) == 1 and not path.exists():
        candidate = Path(runs_dir) / path
        if candidate.exists() and not inside(candidate, runs_dir):
            raise RunDirError(run, f"run id resolves outside the runs directory {runs_dir}")
        if not candidate.exists():
            raise RunDirError(run, f"run directory not found (neither a path nor a run id in {runs_dir})")
        path = candidate
    return resolve_run(path)


def resolve_run(path: str | os.PathLike[str]) -> Path:
    run = Path(path)
    if not run.exists():
        raise RunDirError(run, "run directory not found")
    if not run.is_dir():
        raise RunDirError(run, "not a directory (expected a run directory such as runs/<id>)")
    if not (run / CONFIG).is_file():
        raise RunDirError(run, f"not a run directory: {CONFIG} is missing")
    return run.resolve()


def read_summary(run: Path) -> dict[str, Any]:
    path = Path(run) / SUMMARY
    if not path.is_file():
        raise RunDirError(path, "summary.json is missing (the run may not have started training)")
    from rnnlab.common.safeio import MAX_CONFIG_BYTES, read_bytes_bounded
    from rnnlab.rundir.readback import check_summary

    raw = read_bytes_bounded(path, MAX_CONFIG_BYTES, "summary.json", RunDirError)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise RunDirError(path, "summary.json is corrupted (not valid JSON)") from None
    return check_summary(data, path)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's complete rows, each checked to be a row of numbers."""
    from rnnlab.rundir.readback import check_metrics_rows

    path = Path(run_dir) / METRICS
    return check_metrics_rows(read_jsonl(path), path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True`` (no arbitrary code) onto ``device``."""
    if not path.is_file():
        raise RunDirError(path, "checkpoint not found")
    if path.stat().st_size == 0:
        raise RunDirError(path, "checkpoint is empty (0 bytes)")
    if not path.is_file() or not stat.S_ISREG(path.stat().st_mode):
        raise RunDirError(path, "checkpoint is not a regular file")
    try:
        with warnings.catch_warnings():  # torch warns above its own error; ours is the one line
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, wrong magic... (torch's messages vary)
        if isinstance(exc, pickle.UnpicklingError) and "global" in str(exc).lower():
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise RunDirError(path, f"checkpoint holds a pickled object{what}, not a state dict; "
                              "refused (rnnlab loads checkpoints with weights_only=True, which runs "
                              "no code)") from None
        raise RunDirError(path, "checkpoint is truncated or corrupted (torch.load cannot read it)") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise RunDirError(path, "not an rnnlab checkpoint (no 'model' state dict)")
    return obj


class RunLock:
    """An exclusive lock on the run directory itself (``flock`` on its file descriptor) while a
    process trains the run, so two processes never train (or resume) one run at once. Taking it
    writes nothing (a ``--resume`` that fails leaves the run exactly as it was), and the kernel
    drops it when its holder dies, even by ``kill -9``. Without ``fcntl`` (Windows) runs are not
    locked. (rnnlab before 0.x locked ``<run>/.lock``; such a file left in a run is harmless.)"""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir)
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:
            return self
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunDirError(self.path, "another rnnlab process is training this run "
                              "right now") from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

