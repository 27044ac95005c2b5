"""How this process was asked for its runs, and what it answers to whoever started it.

- ``invocation()``: the command line (``rnnlab train ...``) or the Python API call. Runs and sweeps
  record it (``summary.json``'s ``command``, a resume's ``resumed[].command``, a sweep's
  ``command.txt``). The entry point sets it: ``cli.main`` from its arguments, the Python API from the
  call. The library itself never reads ``sys.argv``.
- ``report(run=..., error=...)``: a sweep trial's result file (``$RNNLAB_RESULT_FILE``, JSON): the
  run directory as soon as it exists, and the one-line error the process ended with. The sweep
  reads it instead of searching its directory or its logs.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

RESULT_FILE_ENV = "RNNLAB_RESULT_FILE"

_current: list[str] = []


def invocation() -> str:
    """The command that is running, in words; ``""`` when no entry point said."""
    return _current[-1] if _current else ""


@contextlib.contextmanager
def invoked_as(command: str) -> Iterator[None]:
    _current.append(command)
    try:
        yield
    finally:
        _current.pop()


def report(**facts: Any) -> None:
    """Add ``facts`` to this process's result file, if it was given one (written whole each time)."""
    target = os.environ.get(RESULT_FILE_ENV)
    if not target:
        return
    path = Path(target)
    try:
        known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        known = {}
    known.update({k: (str(v) if isinstance(v, Path) else v) for k, v in facts.items()})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(known), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # the result file is a convenience; the run directory stays the truth
        tmp.unlink(missing_ok=True)


def read_result(path: Path) -> dict[str, Any]:
    """A result file written by ``report`` ({} when there is none or it cannot be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
