"""The ``rnnlab`` command: the app with every command registered, and ``main``, its entry point."""

from __future__ import annotations

import sys

# registration: each adds its commands to the app, in this order in --help
from rnnlab.cli import run_commands as cli_run  # noqa: F401

# isort: split
from rnnlab.cli import lab_commands as cli_more  # noqa: F401
from rnnlab.cli.frame import EXIT_DIVERGED, EXIT_USER_ERROR, app

__all__ = ["EXIT_DIVERGED", "EXIT_USER_ERROR", "app", "main"]


def main() -> None:
    import shlex

    from rnnlab.common.allocator import keep_freed_memory
    from rnnlab.common.invocation import invoked_as
    from rnnlab.common.signals import install_stop_handlers

    # before torch allocates anything (rnnlab.common.allocator; RNNLAB_MALLOC=system: off)
    keep_freed_memory()
    install_stop_handlers()  # SIGTERM/SIGINT at any instant: one `interrupted:` line, not silence
    with invoked_as(shlex.join(["rnnlab", *sys.argv[1:]])):
        app(prog_name="rnnlab")

