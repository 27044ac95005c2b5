"""The command line: parse, call library functions, print. User errors become one line
(``error: <where>: <what>``) and exit status 2.

The app and its error handling are in ``app``; the commands on one run (``train``, ``eval``,
``generate`` ...) in ``run_commands``; those over registries, runs and sweeps (``list``, ``sweep``,
``compare`` ...) in ``lab_commands``; ``catalog`` (``rnnlab list``), ``completion`` and ``runlist``
serve them. This module puts them together and is the entry point.

May import: every package (the command line is the top layer, with the Python API).
"""

from __future__ import annotations

import sys

# registration: each adds its commands to the app, in this order in --help
from rnnlab.cli import run_commands as cli_run  # noqa: F401

# isort: split
from rnnlab.cli import lab_commands as cli_more  # noqa: F401
from rnnlab.cli.app import EXIT_DIVERGED, EXIT_USER_ERROR, app

__all__ = ["EXIT_DIVERGED", "EXIT_USER_ERROR", "app", "main"]


def main() -> None:
    import shlex

    from rnnlab.common.allocator import keep_freed_memory
    from rnnlab.common.invocation import invoked_as
    from rnnlab.common.signals import install_stop_handlers

    keep_freed_memory()  # before torch allocates anything (rnnlab.common.allocator; RNNLAB_MALLOC=system: off)
    install_stop_handlers()  # SIGTERM/SIGINT at any instant: one `interrupted:` line, not silence
    with invoked_as(shlex.join(["rnnlab", *sys.argv[1:]])):
        app(prog_name="rnnlab")


if __name__ == "__main__":
    sys.exit(main())
