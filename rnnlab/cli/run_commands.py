"""Commands on one run: train (and --resume), eval, generate, predict, forecast, export, track.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from rnnlab.cli import completion as complete
from rnnlab.cli.frame import app, check_run_options, fail, foreign_option, training_outcomes, user_errors

if TYPE_CHECKING:
    pass


@app.command()
@user_errors
def train(
    config: Optional[Path] = typer.Argument(
        None, help="YAML config, e.g. configs/lstm_sine.yaml (omit with --resume)",
        autocompletion=complete.config_files),
    set_: List[str] = typer.Option([], "--set", "-s", help="dotted override KEY=VALUE (repeatable)"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run directories go"),
    name: Optional[str] = typer.Option(None, "--name", help="run name (default: the config's name)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the run directory and final metrics"),
    resume: Optional[Path] = typer.Option(
        None, "--resume", metavar="RUN", help="continue RUN (a run directory, or a run id in "
        "--runs-dir) from its last checkpoint; --set may change only safe keys such as train.epochs",
        autocompletion=complete.run_ids),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="data folder, sets data.root (default: $RNNLAB_DATA, then the cache)"),
    allow_foreign: bool = typer.Option(
        False, "--allow-foreign-checkpoint", help="--resume: continue from a checkpoint even when "
        "it was written by another run"),
) -> None:
    """Train a model on a task; writes runs/<id>/ and prints its path last."""
    from rnnlab.common.console import make_reporter
    from rnnlab.config.loading import load_experiment
    from rnnlab.execution.launch import run_training
    from rnnlab.rundir.files import check_name

    if resume is not None:
        return resume_training(resume, config, set_, runs_dir, name, quiet, allow_foreign)
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
        run_dir = run_training(exp, runs_dir, reporter)
    typer.echo(str(run_dir))


def resume_training(run: Path, config: Optional[Path], overrides: List[str], runs_dir: Path,
                    name: Optional[str], quiet: bool, allow_foreign: bool = False) -> None:
    from rnnlab.common.console import make_reporter
    from rnnlab.execution.resume import resume_run

    if config is not None:
        fail(f"--resume: a resumed run keeps its own config; drop {config} (change safe keys with --set)")
    if name is not None:
        fail("--name: a resumed run keeps its name and directory")
    reporter = make_reporter(quiet, 50)  # resume_run sets the run's own log_every
    with training_outcomes(reporter):
        run_dir, note = resume_run(run, overrides, runs_dir, reporter, allow_foreign=allow_foreign)
    if note is not None:
        typer.echo(f"{run_dir}: {note}")
    typer.echo(str(run_dir))


@app.command("eval")
@user_errors
def eval_(
    run: Path = typer.Argument(..., help="a run directory, e.g. runs/<id>", autocompletion=complete.run_dirs),
    split: str = typer.Option("test", "--split", help="test | val",
                              autocompletion=complete.choices("test", "val")),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last",
                                  autocompletion=complete.checkpoints),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto",
                              autocompletion=complete.devices),
    allow_foreign: bool = foreign_option(),
) -> None:
    """Re-evaluate a finished run from its own files."""
    from rnnlab.training.evaluation import evaluate_run

    if split not in ("test", "val"):
        fail(f"--split: must be 'test' or 'val', got {split!r}")
    check_run_options(checkpoint, device)
    metrics = evaluate_run(run, split, checkpoint, device, allow_foreign)
    if as_json:
        typer.echo(json.dumps({"run": str(run), "split": split, "checkpoint": checkpoint,
                               "metrics": metrics}))
    else:
        for key, value in metrics.items():
            typer.echo(f"{split} {key} {value!r}")


@app.command()
@user_errors
def generate(
    run: Path = typer.Argument(..., help="a charlm run directory, e.g. runs/<id>",
                               autocompletion=complete.run_dirs),
    prefix: str = typer.Option("\n", "--prefix", help="text to continue (printed first)"),
    length: int = typer.Option(500, "--length", help="new characters to generate"),
    temperature: float = typer.Option(0.8, "--temperature", help="0 = greedy; higher = more random"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="sample among the k most likely characters"),
    seed: Optional[int] = typer.Option(None, "--seed", help="same seed, same text (default: random)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last",
                                  autocompletion=complete.checkpoints),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto",
                              autocompletion=complete.devices),
    allow_foreign: bool = foreign_option(),
) -> None:
    """Sample text from a trained character-level language model."""
    from rnnlab.execution.inference import generate_run

    check_run_options(checkpoint, device)
    typer.echo(generate_run(run, prefix, length, temperature, top_k, seed, checkpoint, device, allow_foreign))


@app.command()
@user_errors
def predict(
    run: Path = typer.Argument(..., help="a finished text classification run, e.g. runs/<id>",
                               autocompletion=complete.run_dirs),
    texts: List[str] = typer.Argument(None, help="sentences to classify"),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="a UTF-8 file, one sentence per line"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last",
                                  autocompletion=complete.checkpoints),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per sentence"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto",
                              autocompletion=complete.devices),
    allow_foreign: bool = foreign_option(),
) -> None:
    """Print the predicted label and its probability for each sentence (tab-separated)."""
    from rnnlab.execution.inference import predict as predict_texts

    check_run_options(checkpoint, device)
    for p in predict_texts(run, list(texts or []), file, checkpoint, device, allow_foreign):
        if as_json:
            typer.echo(json.dumps({"text": p.text, "label": p.label, "probability": p.probability,
                                   "probabilities": p.probabilities}))
        else:
            typer.echo(f"{p.label}\t{p.probability:.4f}\t{p.text}")


@app.command()
@user_errors
def forecast(
    run: Path = typer.Argument(..., help="a finished series run, e.g. runs/<id>",
                               autocompletion=complete.run_dirs),
    file: Path = typer.Option(..., "--file", "-f",
                              help="CSV/TSV with the run's columns; its last lookback rows are read"),
    horizon: Optional[int] = typer.Option(None, "--horizon", help="steps ahead (default: the run's horizon)"),
    out: Path = typer.Option(Path("forecast.csv"), "--out", help="CSV to write (a PNG plot goes beside it)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last",
                                  autocompletion=complete.checkpoints),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto",
                              autocompletion=complete.devices),
    force: bool = typer.Option(False, "--force", help="replace --out (and its plot) if they exist"),
) -> None:
    """Forecast the next steps after a CSV's last rows, in its units and with its timestamps."""
    from rnnlab.execution.inference import forecast_run

    check_run_options(checkpoint, device)
    result = forecast_run(run, file, horizon, out, checkpoint, device, force)
    typer.echo(f"{len(result.times)} steps of {', '.join(result.columns)} after {file}")
    typer.echo(str(result.plot))
    typer.echo(str(result.csv))


@app.command()
@user_errors
def export(
    run: Path = typer.Argument(..., help="a finished run directory, e.g. runs/<id>",
                               autocompletion=complete.run_dirs),
    format_: str = typer.Option(..., "--format", help="onnx | torchscript",
                                autocompletion=complete.choices("onnx", "torchscript")),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last",
                                  autocompletion=complete.checkpoints),
    out: Optional[Path] = typer.Option(
        None, "--out", help="file to write (default: RUN/export/model_<checkpoint>.onnx or .pt)"),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="largest allowed abs difference from PyTorch"),
    force: bool = typer.Option(False, "--force", help="replace --out (and its .json sidecar) if they exist"),
) -> None:
    """Export a run's model to ONNX or TorchScript (dynamic batch and time, recurrent state as
    inputs/outputs), run it on the run's data and compare with PyTorch; print the file last."""
    from rnnlab.integrations.export import export_run

    check_run_options(checkpoint, "cpu")
    result = export_run(run, format_, checkpoint, out, tolerance, force=force)
    for check, diff in result.checks.items():
        typer.echo(f"max abs diff {diff:.3g}: {check}")
    typer.echo(f"inputs {', '.join(result.inputs)} -> outputs {', '.join(result.outputs)}")
    typer.echo(str(result.path))


@app.command()
@user_errors
def track(
    source: Path = typer.Argument(..., metavar="RUN_OR_SWEEP", help="a run or sweep directory",
                                  autocompletion=complete.runs_and_sweeps),
    to: Optional[str] = typer.Option(
        None, "--to", help="MLflow tracking URI: a directory, file://PATH, sqlite:///PATH, "
        "http(s)://HOST[:PORT] or databricks (default: the run's logging.mlflow.tracking_uri, else "
        "sqlite:///<runs dir>/mlflow.db with artifacts in <runs dir>/mlartifacts)"),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment name"),
) -> None:
    """Log finished runs (or a sweep: a parent run with its trials nested) to MLflow from their files."""
    from rnnlab.sweeps.tracking import track as log_to_mlflow

    for line in log_to_mlflow(source, to, experiment):
        typer.echo(line)
