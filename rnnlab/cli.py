"""The command line: parse, call library functions, print. User errors become one line
(``error: <where>: <what>``) and exit status 2."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional

import typer
from typer.core import TyperGroup

from .errors import ConfigError, RnnlabError

if TYPE_CHECKING:
    from .progress import Reporter

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
        typer.echo(f"error: {where}: {what}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


app = typer.Typer(cls=OneLineErrors, add_completion=True, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Train and compare recurrent networks from YAML configs.")


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
        except KeyboardInterrupt as exc:  # outside training (which stops gracefully): nothing half-done
            from .signals import exit_status

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
            from .safeio import is_disk_full

            if is_disk_full(exc):
                assert isinstance(exc, OSError)
                fail(f"{exc.filename or 'rnnlab'}: no space left on device")
            if isinstance(exc, OSError) and exc.filename is not None:  # a path the system refuses:
                fail(f"{exc.filename}: {exc.strerror or exc}")  # name too long, permission, disk full
            traceback.print_exc()
            typer.echo("rnnlab hit an internal error (a bug, not your input); please report it "
                       "with the traceback above.", err=True)
            raise typer.Exit(1) from None

    return wrapper


@contextlib.contextmanager
def training_outcomes(reporter: "Reporter") -> Iterator[None]:
    """How a training command ends when it does not complete: a stop (exit 130/143) or a
    divergence (exit 3) leaves a run directory, printed last as on success."""
    from .signals import exit_status
    from .train import Diverged, Interrupted

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
        typer.echo(f"error: {exc.line()}", err=True)
        typer.echo(str(exc.where))
        raise typer.Exit(EXIT_DIVERGED) from None
    finally:
        reporter.close()


def foreign_option() -> Any:
    """``--allow-foreign-checkpoint``, shared by every command that loads a run's checkpoint."""
    return typer.Option(False, "--allow-foreign-checkpoint",
                        help="use a checkpoint even when it was written by another run")


def check_run_options(checkpoint: str, device: str, allow_foreign: bool = False) -> None:
    """The options every command that loads a run's weights shares."""
    from .identity import allow_foreign as set_allow_foreign

    set_allow_foreign(allow_foreign)
    if checkpoint not in ("best", "last"):
        fail(f"--checkpoint: must be 'best' or 'last', got {checkpoint!r}")
    if device not in ("cpu", "cuda", "auto"):
        fail(f"--device: must be cpu, cuda or auto, got {device!r}")


@app.command()
@user_errors
def train(
    config: Optional[Path] = typer.Argument(
        None, help="YAML config, e.g. configs/lstm_sine.yaml (omit with --resume)"),
    set_: List[str] = typer.Option([], "--set", "-s", help="dotted override KEY=VALUE (repeatable)"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run directories go"),
    name: Optional[str] = typer.Option(None, "--name", help="run name (default: the config's name)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the run directory and final metrics"),
    resume: Optional[Path] = typer.Option(
        None, "--resume", metavar="RUN", help="continue RUN (a run directory, or a run id in "
        "--runs-dir) from its last checkpoint; --set may change only safe keys such as train.epochs"),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="data folder, sets data.root (default: $RNNLAB_DATA, then the cache)"),
    allow_foreign: bool = typer.Option(
        False, "--allow-foreign-checkpoint", help="--resume: continue from a checkpoint even when "
        "it was written by another run"),
) -> None:
    """Train a model on a task; writes runs/<id>/ and prints its path last."""
    from .config import load_experiment
    from .progress import make_reporter
    from .runs import check_name
    from .train import train_run

    if resume is not None:
        from .identity import allow_foreign as set_allow_foreign

        set_allow_foreign(allow_foreign)
        return resume_training(resume, config, set_, runs_dir, name, quiet)
    if allow_foreign:
        fail("--allow-foreign-checkpoint: only with --resume (a new run has no checkpoint)")
    if config is None:
        fail("CONFIG: missing argument: give a YAML config file (or --resume RUN)")
    if name is not None:
        check_name(name)
    if data_dir is not None:  # absolute, so `rnnlab eval` finds it from anywhere; JSON is quoted YAML
        set_ = [*set_, "data.root=" + json.dumps(str(data_dir.expanduser().resolve()))]
    exp = load_experiment(config, set_, name)
    reporter = make_reporter(quiet, exp.train.log_every)
    with training_outcomes(reporter):
        run_dir = train_run(exp, runs_dir, reporter)
    typer.echo(str(run_dir))


def resume_training(run: Path, config: Optional[Path], overrides: List[str], runs_dir: Path,
                    name: Optional[str], quiet: bool) -> None:
    from .progress import make_reporter
    from .resume import resume_run

    if config is not None:
        fail(f"--resume: a resumed run keeps its own config; drop {config} (change safe keys with --set)")
    if name is not None:
        fail("--name: a resumed run keeps its name and directory")
    reporter = make_reporter(quiet, 50)  # resume_run sets the run's own log_every
    with training_outcomes(reporter):
        run_dir, note = resume_run(run, overrides, runs_dir, reporter)
    if note is not None:
        typer.echo(f"{run_dir}: {note}")
    typer.echo(str(run_dir))


@app.command("eval")
@user_errors
def eval_(
    run: Path = typer.Argument(..., help="a run directory, e.g. runs/<id>"),
    split: str = typer.Option("test", "--split", help="test | val"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
    allow_foreign: bool = foreign_option(),
) -> None:
    """Re-evaluate a finished run from its own files."""
    from .train import evaluate_run

    if split not in ("test", "val"):
        fail(f"--split: must be 'test' or 'val', got {split!r}")
    check_run_options(checkpoint, device, allow_foreign)
    metrics = evaluate_run(run, split, checkpoint, device)
    if as_json:
        typer.echo(json.dumps({"run": str(run), "split": split, "checkpoint": checkpoint,
                               "metrics": metrics}))
    else:
        for key, value in metrics.items():
            typer.echo(f"{split} {key} {value!r}")


@app.command()
@user_errors
def generate(
    run: Path = typer.Argument(..., help="a charlm run directory, e.g. runs/<id>"),
    prefix: str = typer.Option("\n", "--prefix", help="text to continue (printed first)"),
    length: int = typer.Option(500, "--length", help="new characters to generate"),
    temperature: float = typer.Option(0.8, "--temperature", help="0 = greedy; higher = more random"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="sample among the k most likely characters"),
    seed: Optional[int] = typer.Option(None, "--seed", help="same seed, same text (default: random)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
    allow_foreign: bool = foreign_option(),
) -> None:
    """Sample text from a trained character-level language model."""
    from .generate import generate_run

    check_run_options(checkpoint, device, allow_foreign)
    typer.echo(generate_run(run, prefix, length, temperature, top_k, seed, checkpoint, device))


@app.command()
@user_errors
def predict(
    run: Path = typer.Argument(..., help="a finished text classification run, e.g. runs/<id>"),
    texts: List[str] = typer.Argument(None, help="sentences to classify"),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="a UTF-8 file, one sentence per line"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per sentence"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
    allow_foreign: bool = foreign_option(),
) -> None:
    """Print the predicted label and its probability for each sentence (tab-separated)."""
    from .predict import predict as predict_texts

    check_run_options(checkpoint, device, allow_foreign)
    for p in predict_texts(run, list(texts or []), file, checkpoint, device):
        if as_json:
            typer.echo(json.dumps({"text": p.text, "label": p.label, "probability": p.probability,
                                   "probabilities": p.probabilities}))
        else:
            typer.echo(f"{p.label}\t{p.probability:.4f}\t{p.text}")


@app.command()
@user_errors
def forecast(
    run: Path = typer.Argument(..., help="a finished series run, e.g. runs/<id>"),
    file: Path = typer.Option(..., "--file", "-f",
                              help="CSV/TSV with the run's columns; its last lookback rows are read"),
    horizon: Optional[int] = typer.Option(None, "--horizon", help="steps ahead (default: the run's horizon)"),
    out: Path = typer.Option(Path("forecast.csv"), "--out", help="CSV to write (a PNG plot goes beside it)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
) -> None:
    """Forecast the next steps after a CSV's last rows, in its units and with its timestamps."""
    from .forecast import forecast_run

    check_run_options(checkpoint, device)
    result = forecast_run(run, file, horizon, out, checkpoint, device)
    typer.echo(f"{len(result.times)} steps of {', '.join(result.columns)} after {file}")
    typer.echo(str(result.plot))
    typer.echo(str(result.csv))


@app.command("check")
@user_errors
def check_(
    name: str = typer.Argument(..., metavar="MODEL_OR_TASK", help="a registered model or task"),
    task: Optional[str] = typer.Option(None, "--task", help="check the model on this task only"),
    set_: List[str] = typer.Option([], "--set", "-s", help="model option KEY=VALUE (repeatable)"),
    plugin: List[str] = typer.Option([], "--plugin", help="import a module or .py file first (repeatable)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="print every check, passed and skipped too"),
) -> None:
    """Conformance checks of a model (on every task it can be built for) or of a task: one line
    per failure, exit status 1 when a check fails."""
    from .testing import import_plugin, model_options, run_check

    for spec in plugin:
        import_plugin(spec)
    status = run_check(name, task, model_options(set_), verbose, typer.echo)
    if status:
        raise typer.Exit(status)


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


@app.command()
@user_errors
def show(run: Path = typer.Argument(..., help="a run directory, e.g. runs/<id>")) -> None:
    """Print a run's summary, config, last epoch's metrics and its plots."""
    from .report import show_lines

    typer.echo("\n".join(show_lines(run)))


@app.command()
@user_errors
def plot(
    run: Path = typer.Argument(..., help="a run directory, e.g. runs/<id>"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
    allow_foreign: bool = foreign_option(),
) -> None:
    """Redraw every plot of a run from its own files (metrics and best checkpoint)."""
    from .report import replot

    check_run_options("best", device, allow_foreign)
    for path in replot(run, device):
        typer.echo(str(path))


@app.command()
@user_errors
def gradflow(
    sources: List[Path] = typer.Argument(..., help="configs and/or run directories, overlaid"),
    steps: int = typer.Option(0, "--steps", min=0,
                              help="configs: also measure after K training steps (runs: best checkpoint)"),
    set_: List[str] = typer.Option([], "--set", "-s", help="override KEY=VALUE for every config"),
    out: Optional[Path] = typer.Option(
        None, "--out", help="PNG to write, CSV beside it (default: RUN/plots/gradflow.png for one "
        "run, else ./gradflow.png)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="batch measured (default: train.batch_size)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto"),
) -> None:
    """Gradient norm ||dL/dh_t|| at every time step and layer (log scale), at initialisation and
    trained; several configs or runs are overlaid (e.g. RNN vs LSTM on 784-pixel MNIST)."""
    from .gradflow import gradflow as measure
    from .gradflow import write_csv
    from .plots import gradflow_plot

    if out is None:
        one_run = len(sources) == 1 and sources[0].is_dir()
        out = sources[0] / "plots" / "gradflow.png" if one_run else Path("gradflow.png")
    if out.suffix.lower() != ".png":
        fail(f"--out: must name a .png file, got {str(out)!r}")
    curves = measure(sources, set_, steps, device, batch_size)
    for c in curves:
        first, last = c.norms[0], c.norms[-1]
        typer.echo(f"{c.label} {c.stage} {c.layer}: {len(c.norms)} steps, |dL/dh| first "
                   f"{first:.3g}, last {last:.3g}, first/last {first / last if last else float('nan'):.3g}")
    typer.echo(str(gradflow_plot(curves, out)))
    typer.echo(str(write_csv(curves, out.with_suffix(".csv"))))


@app.command()
@user_errors
def sweep(
    sweep_file: Optional[Path] = typer.Argument(
        None, metavar="[SWEEP]",
        help="sweep file, e.g. configs/sweep_sine_families.yaml (optional with --resume)"),
    workers: int = typer.Option(1, "--workers", "-w", help="trials run at a time"),
    runs_dir: Optional[Path] = typer.Option(
        None, "--runs-dir", help="where the sweep directory goes [default: runs]"),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="a sweep directory: run its trials not completed"),
    backend: str = typer.Option("local", "--backend", help="local | ray"),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster address (default: a local Ray)"),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="no per-trial lines; only the table and the best run"),
) -> None:
    """Run a grid/random sweep as separate runs, N at a time; rank them; print the best run last."""
    from .sweep.runner import Options, run_sweep

    if sweep_file is None and resume is None:
        fail("give a sweep file, or --resume DIR to continue a sweep")
    if resume is not None and runs_dir is not None:
        fail("--runs-dir: not used with --resume (the sweep directory is given)")
    if ray_address is not None and backend != "ray":
        fail("--ray-address: needs --backend ray")
    say = (lambda line: None) if quiet else (lambda line: print(line, flush=True))  # flushed: logs tail it
    outcome = run_sweep(sweep_file, runs_dir or Path("runs"), resume,
                        Options(workers, backend, ray_address), say)
    _console().print(outcome.table)
    typer.echo(f"summary: {outcome.sweep_dir / 'summary.csv'}")
    if outcome.status == "interrupted":
        typer.echo(f"interrupted; continue with: rnnlab sweep --resume {outcome.sweep_dir}", err=True)
    elif outcome.status != "completed":
        typer.echo(f"some trials did not complete (see the table); rerun them with: "
                   f"rnnlab sweep --resume {outcome.sweep_dir}", err=True)
    typer.echo(str(outcome.best.run) if outcome.best is not None else str(outcome.sweep_dir))
    if outcome.status != "completed":
        raise typer.Exit(130 if outcome.status == "interrupted" else 1)


def _console() -> Any:
    """Rich output; wide when not a terminal, so piped tables are not squeezed to 80 columns."""
    from rich.console import Console

    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)


@app.command("runs")
@user_errors
def runs_(
    runs_dir: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="folder of runs (sweeps included)"),
    task: Optional[str] = typer.Option(None, "--task", help="only runs of this task"),
    model: Optional[str] = typer.Option(None, "--model", help="only runs of this model"),
    status: Optional[str] = typer.Option(None, "--status", help="only runs with this status, e.g. completed"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """List runs, newest first: id, task, model, status, key metric, time."""
    from .compare import list_runs, runs_table

    infos = list_runs(runs_dir, task, model, status)
    if as_json:
        typer.echo(json.dumps({"runs": [{"id": i.id, "path": str(i.path), "task": i.summary.get("task"),
                                         "model": i.summary.get("model"), "status": i.status,
                                         "metric": i.key_metric()[0], "value": i.key_metric()[1],
                                         "split": i.key_metric()[2] or None,
                                         "train_seconds": i.summary.get("train_seconds"),
                                         "started": i.started or None} for i in infos]}))
        return
    filters = ", ".join(f"{k}={v}" for k, v in (("task", task), ("model", model), ("status", status)) if v)
    title = f"{len(infos)} run(s) in {runs_dir}" + (f" ({filters})" if filters else "")
    _console().print(runs_table(infos, title))


@app.command()
@user_errors
def compare(
    runs: Optional[List[Path]] = typer.Argument(
        None, metavar="RUN RUN...", help="run directories (or a sweep directory)"),
    group_a: Optional[List[Path]] = typer.Option(
        None, "--group-a", "-a", help="a run (or folder of runs) of group A; repeat for more"),
    group_b: Optional[List[Path]] = typer.Option(
        None, "--group-b", "-b", help="a run (or folder of runs) of group B; repeat for more"),
    by: Optional[str] = typer.Option(
        None, "--by", metavar="KEY=A,B", help="split RUN... into two groups by a config key, e.g. "
        "model.name=lstm,gru"),
    breakdowns: bool = typer.Option(
        False, "--breakdowns", help="groups: also per-class metrics such as accuracy/3 (always in --json)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Config differences and metrics of runs side by side; with two groups (--group-a/--group-b,
    or --by KEY=A,B), the difference of their means with a 95 % Welch t interval."""
    from .compare import compare_groups, compare_runs, comparison_tables, group_table, split_by

    if group_a or group_b or by:
        if by and (group_a or group_b):
            raise ConfigError("--by", "give either --by or --group-a/--group-b, not both")
        if by:
            a, b, labels = split_by(list(runs or []), by)
        elif runs or not group_a or not group_b:
            raise ConfigError("--group-a", "give both --group-a and --group-b, and no other RUN")
        else:
            a, b, labels = list(group_a), list(group_b), ("A", "B")
        groups = compare_groups(a, b, labels)
        if as_json:
            typer.echo(json.dumps(groups.to_json()))
            return
        console = _console()
        console.print(group_table(groups, breakdowns))
        for skipped in groups.skipped:
            console.print(f"left out (not completed): {skipped}")
        return
    comparison = compare_runs(list(runs or []))
    if as_json:
        typer.echo(json.dumps(comparison.to_json()))
        return
    console = _console()
    for table in comparison_tables(comparison):
        console.print(table)


@app.command("config")
@user_errors
def config_(
    config: Path = typer.Argument(..., help="YAML config, e.g. configs/lstm_mnist.yaml"),
    set_: List[str] = typer.Option([], "--set", "-s", help="dotted override KEY=VALUE (repeatable)"),
    name: Optional[str] = typer.Option(None, "--name", help="run name (default: the config's name)"),
) -> None:
    """Print the resolved config (every default written out) as YAML, without running anything;
    the same text `rnnlab train` saves as the run's config.yaml."""
    from .config import load_experiment

    typer.echo(load_experiment(config, set_, name).to_yaml(), nl=False)


@app.command()
@user_errors
def export(
    run: Path = typer.Argument(..., help="a finished run directory, e.g. runs/<id>"),
    format_: str = typer.Option(..., "--format", help="onnx | torchscript"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    out: Optional[Path] = typer.Option(
        None, "--out", help="file to write (default: RUN/export/model_<checkpoint>.onnx or .pt)"),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="largest allowed abs difference from PyTorch"),
) -> None:
    """Export a run's model to ONNX or TorchScript (dynamic batch and time, recurrent state as
    inputs/outputs), run it on the run's data and compare with PyTorch; print the file last."""
    from .export import export_run

    check_run_options(checkpoint, "cpu")
    result = export_run(run, format_, checkpoint, out, tolerance)
    for check, diff in result.checks.items():
        typer.echo(f"max abs diff {diff:.3g}: {check}")
    typer.echo(f"inputs {', '.join(result.inputs)} -> outputs {', '.join(result.outputs)}")
    typer.echo(str(result.path))


@app.command()
@user_errors
def track(
    source: Path = typer.Argument(..., metavar="RUN_OR_SWEEP", help="a run or sweep directory"),
    to: Optional[str] = typer.Option(
        None, "--to", help="MLflow tracking URI (default: the run's logging.mlflow, else a local "
        "store beside it: <runs dir>/mlruns)"),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment name"),
) -> None:
    """Log finished runs (or a sweep: a parent run with its trials nested) to MLflow from their files."""
    from .mlflow_log import track as log_to_mlflow

    for line in log_to_mlflow(source, to, experiment):
        typer.echo(line)


def main() -> None:
    from .signals import install_stop_handlers

    install_stop_handlers()  # SIGTERM/SIGINT at any instant: one `interrupted:` line, not silence
    app(prog_name="rnnlab")


if __name__ == "__main__":
    sys.exit(main())
