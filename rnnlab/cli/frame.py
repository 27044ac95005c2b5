"""The command line's frame: the typer app, one-line user errors (exit 2), how a training command
ends when it does not complete, and the options shared by the commands that load a run.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional

import typer
from typer.core import TyperGroup

from rnnlab.errors import RnnlabError

if TYPE_CHECKING:
    from rnnlab.common.console import Reporter


EXIT_USER_ERROR = 2


EXIT_DIVERGED = 3


# click's UsageError, found through typer's public BadParameter: typer >= 0.26 vendors click
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class OneLineErrors(TyperGroup):
    """Command-line mistakes (unknown option or command, missing argument, bad value) print one
    line, like every other user error, instead of click's usage box."""

    def make_context(self, info_name: Optional[str], args: List[str], parent: Any = None,
                     **extra: Any) -> Any:
        with one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with one_line_usage_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # `rnnlab` alone
            typer.echo(exc.ctx.get_help())
            raise typer.Exit(0) from None
        where = exc.ctx.command_path if exc.ctx else "rnnlab"
        what = " ".join(exc.format_message().split())
        from rnnlab.common.invocation import report

        report(error=f"{where}: {what}")
        typer.echo(f"error: {where}: {what}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


app = typer.Typer(cls=OneLineErrors, add_completion=True, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},  # every command inherits it
                  help="Train and compare recurrent networks from YAML configs.")


def package_version() -> str:
    """rnnlab's version from the installed package's metadata (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rnnlab")
    except PackageNotFoundError:
        from rnnlab import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"rnnlab {package_version()}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print rnnlab's version and exit."),
) -> None:
    pass


def fail(message: str) -> None:
    from rnnlab.common.invocation import report
    from rnnlab.common.safeio import without_temp_names

    message = without_temp_names(message)
    report(error=message)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our exceptions into one line and exit 2; anything else is a bug, reported as such."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RnnlabError as exc:
            fail(exc.line())
        except KeyboardInterrupt as exc:  # outside training (which stops gracefully): nothing half-done
            from rnnlab.common.signals import exit_status

            signum = getattr(exc, "signum", None)
            name = str(exc) or "SIGINT"
            typer.echo(f"interrupted: {name}: stopped; every file rnnlab writes is written whole, "
                       "none is left half-written", err=True)
            raise typer.Exit(exit_status(signum)) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BrokenPipeError:  # `rnnlab ... | head`: the reader left; not an error of ours
            sys.stderr.close()
            raise typer.Exit(0) from None
        except Exception as exc:
            from rnnlab.common.safeio import disk_full_path, is_disk_full

            if is_disk_full(exc):
                fail(f"{disk_full_path(exc) or 'rnnlab'}: no space left on device")
            if isinstance(exc, OSError) and exc.filename is not None:  # a path the system refuses:
                fail(f"{exc.filename}: {exc.strerror or exc}")  # name too long, permission, disk full
            traceback.print_exc()
            from rnnlab.common.invocation import report

            report(error=f"internal error: {type(exc).__name__}: {exc}"[:300])
            typer.echo("rnnlab hit an internal error (a bug, not your input); please report it "
                       "with the traceback above.", err=True)
            raise typer.Exit(1) from None

    return wrapper


@contextlib.contextmanager
def training_outcomes(reporter: "Reporter") -> Iterator[None]:
    """How a training command ends when it does not complete: a stop (exit 130/143) or a
    divergence (exit 3) leaves a run directory, printed last as on success."""
    from rnnlab.common.signals import exit_status
    from rnnlab.training.stops import Diverged, Interrupted

    try:
        yield
    except Interrupted as exc:
        reporter.close()
        if exc.run_dir is not None:  # None: a torchrun worker beside rank 0, which reports
            typer.echo(f"interrupted: {exc.run_dir}: checkpoint saved {exc.saved}; continue with: "
                       f"rnnlab train --resume {exc.run_dir}", err=True)
            typer.echo(str(exc.run_dir))
        elif exc.note is not None:
            typer.echo(f"interrupted: {exc.note}", err=True)
        raise typer.Exit(exit_status(exc.signum)) from None
    except Diverged as exc:
        reporter.close()
        from rnnlab.common.invocation import report

        report(error=exc.line())
        typer.echo(f"error: {exc.line()}", err=True)
        typer.echo(str(exc.where))
        raise typer.Exit(EXIT_DIVERGED) from None
    finally:
        reporter.close()


def foreign_option() -> Any:
    """``--allow-foreign-checkpoint``, shared by every command that loads a run's checkpoint."""
    return typer.Option(False, "--allow-foreign-checkpoint",
                        help="use a checkpoint even when it was written by another run")


def check_run_options(checkpoint: str, device: str) -> None:
    """The options every command that loads a run's weights shares."""
    if checkpoint not in ("best", "last"):
        fail(f"--checkpoint: must be 'best' or 'last', got {checkpoint!r}")
    from rnnlab.training.runtime import check_device

    check_device(device, "--device")  # a ConfigError: one line via user_errors


def _console() -> Any:
    """Rich output; wide when not a terminal, so piped tables are not squeezed to 80 columns."""
    from rich.console import Console

    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)
