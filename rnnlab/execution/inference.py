"""Inference from a run directory: load a finished run's model with what its task needs (its own
files; see ``training.evaluation.load_run``) and call the task's verb on it: ``rnnlab generate``
(charlm), ``rnnlab predict`` (text classification), ``rnnlab forecast`` (series). Everything a user
can get wrong is checked before the run is loaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from rnnlab.tasks.charlm_generate import check_settings, generate_text
from rnnlab.tasks.sentiment_predict import Prediction, classify, sentences
from rnnlab.tasks.series_forecast import Forecast, forecast, forecast_outputs
from rnnlab.training.evaluation import load_run


def generate_run(run: str | os.PathLike[str], prefix: str, length: int, temperature: float,
                 top_k: Optional[int] = None, seed: Optional[int] = None, checkpoint: str = "best",
                 device: str = "cpu", allow_foreign: bool = False) -> str:
    """Sample ``length`` characters after ``prefix`` from a char-LM run."""
    check_settings(length, temperature, top_k, seed)
    run_dir, exp, task, model, _ = load_run(run, checkpoint, device, allow_foreign, for_inference=True)
    return generate_text(run_dir, exp.task.name, task, model, prefix, length, temperature, top_k, seed)


def predict(run: str | os.PathLike[str], texts: list[str], file: Optional[Path] = None,
            checkpoint: str = "best", device: str = "cpu", allow_foreign: bool = False) -> list[Prediction]:
    """Predicted label and probabilities for each text (the arguments first, then the file's lines)."""
    items = sentences(texts, file)
    run_dir, exp, task, model, _ = load_run(run, checkpoint, device, allow_foreign, for_inference=True)
    return classify(run_dir, exp.task.name, task, model, items)


def forecast_run(run: str | os.PathLike[str], file: Path, horizon: Optional[int] = None,
                 out: Optional[Path] = None, checkpoint: str = "best", device: str = "cpu",
                 force: bool = False, allow_foreign: bool = False) -> Forecast:
    """The next ``horizon`` rows of a series run's targets after ``file``, written to ``out`` (CSV)
    and beside it as a plot."""
    out, plot_path = forecast_outputs(file, horizon, out, force)
    run_dir, exp, task, model, _ = load_run(run, checkpoint, device, allow_foreign, for_inference=True)
    return forecast(run_dir, exp, task, model, file, horizon, out, plot_path)


__all__ = ["forecast_run", "generate_run", "predict"]
