"""How this process asked for its runs: the command line (``rnnlab train ...``) or a Python API call.

Runs and sweeps record it (``summary.json``'s ``command``, a resume's ``resumed[].command``, a
sweep's ``commands``). The entry point sets it: ``cli.main`` from its arguments, the Python API from
the call. The library itself never reads ``sys.argv``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

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
