"""The command line: parse, call library functions, print. User errors become one line
(``error: <where>: <what>``) and exit status 2.

The app and its error handling are in ``frame``; the commands on one run (``train``, ``eval``,
``generate`` ...) in ``run_commands``; those over registries, runs and sweeps (``list``, ``sweep``,
``compare`` ...) in ``lab_commands``; ``catalog`` (``rnnlab list``), ``completion`` and ``runlist``
serve them. ``entry`` puts them together; ``trial`` is a sweep trial's process. This package
imports none of them until asked (``main``, ``app``).

May import: every package (the command line is the top layer, with the Python API).
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    """The ``rnnlab`` command (``[project.scripts]``)."""
    from rnnlab.cli.entry import main as run

    run()


def __getattr__(name: str) -> Any:
    """``app`` and the exit codes, imported on first use: a sweep trial's process starts with this
    package (``python -m rnnlab.cli.trial``) and must reach its own first line at once."""
    if name in ("app", "EXIT_DIVERGED", "EXIT_USER_ERROR"):
        from rnnlab.cli import entry

        return getattr(entry, name)
    raise AttributeError(f"module 'rnnlab.cli' has no attribute {name!r}")
