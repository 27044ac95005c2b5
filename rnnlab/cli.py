"""The command line: parse, call library functions, print. User errors become one line
(``error: <where>: <what>``) and exit status 2."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .errors import RnnlabError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train and compare recurrent networks from YAML configs.")

EXIT_USER_ERROR = 2


def fail(message: str) -> None:
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
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except BrokenPipeError:  # `rnnlab ... | head`: the reader left; not an error of ours
            sys.stderr.close()
            raise typer.Exit(0)
        except Exception:
            traceback.print_exc()
            typer.echo("rnnlab hit an internal error (a bug, not your input); please report it "
                       "with the traceback above.", err=True)
            raise typer.Exit(1)

    return wrapper


@app.command()
@user_errors
def train(
    config: Path = typer.Argument(..., help="YAML config, e.g. configs/lstm_sine.yaml"),
    set_: List[str] = typer.Option([], "--set", "-s", help="dotted override KEY=VALUE (repeatable)"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run directories go"),
    name: Optional[str] = typer.Option(None, "--name", help="run name (default: the config's name)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the run directory and final metrics"),
) -> None:
    """Train a model on a task; writes runs/<id>/ and prints its path last."""
    from .config import load_experiment
    from .progress import make_reporter
    from .runs import check_name
    from .train import train_run

    if name is not None:
        check_name(name)
    exp = load_experiment(config, set_, name)
    reporter = make_reporter(quiet, exp.train.log_every)
    try:
        run_dir = train_run(exp, runs_dir, reporter)
    finally:
        reporter.close()
    typer.echo(str(run_dir))


@app.command("eval")
@user_errors
def eval_(
    run: Path = typer.Argument(..., help="a run directory, e.g. runs/<id>"),
    split: str = typer.Option("test", "--split", help="test | val"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
) -> None:
    """Re-evaluate a finished run from its own files."""
    from .train import evaluate_run

    if split not in ("test", "val"):
        fail(f"--split: must be 'test' or 'val', got {split!r}")
    if checkpoint not in ("best", "last"):
        fail(f"--checkpoint: must be 'best' or 'last', got {checkpoint!r}")
    if device not in ("cpu", "cuda", "auto"):
        fail(f"--device: must be cpu, cuda or auto, got {device!r}")
    metrics = evaluate_run(run, split, checkpoint, device)
    if as_json:
        typer.echo(json.dumps({"run": str(run), "split": split, "checkpoint": checkpoint,
                               "metrics": metrics}))
    else:
        for key, value in metrics.items():
            typer.echo(f"{split} {key} {value!r}")


@app.command()
@user_errors
def predict(
    run: Path = typer.Argument(..., help="a finished text classification run, e.g. runs/<id>"),
    texts: List[str] = typer.Argument(None, help="sentences to classify"),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="a UTF-8 file, one sentence per line"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per sentence"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
) -> None:
    """Print the predicted label and its probability for each sentence (tab-separated)."""
    from .predict import predict as predict_texts

    if checkpoint not in ("best", "last"):
        fail(f"--checkpoint: must be 'best' or 'last', got {checkpoint!r}")
    if device not in ("cpu", "cuda", "auto"):
        fail(f"--device: must be cpu, cuda or auto, got {device!r}")
    for p in predict_texts(run, list(texts or []), file, checkpoint, device):
        if as_json:
            typer.echo(json.dumps({"text": p.text, "label": p.label, "probability": p.probability,
                                   "probabilities": p.probabilities}))
        else:
            typer.echo(f"{p.label}\t{p.probability:.4f}\t{p.text}")


@app.command("list")
@user_errors
def list_() -> None:
    """List tasks, models, optimizers and schedulers."""
    from rich.console import Console
    from rich.table import Table

    from .models import MODELS
    from .tasks import TASKS
    from .train import OPTIMIZERS, SCHEDULERS

    console = Console(highlight=False)
    for title, items in (("tasks", list(TASKS.describe())), ("models", list(MODELS.describe())),
                         ("optimizers", list(OPTIMIZERS.items())),
                         ("schedulers", list(SCHEDULERS.items()))):
        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column("name", style="bold")
        table.add_column("description")
        for name, text in items:
            table.add_row(name, text)
        console.print(table)


def main() -> None:
    app(prog_name="rnnlab")


if __name__ == "__main__":
    sys.exit(main())
