"""Forecasting any CSV/TSV series: ``lookback`` rows of the inputs -> the next ``horizon`` rows of
the targets (the literature's M, S and MS settings), on the forecasting base of ``forecasting.py``.

Splits are in time order: fractions of the rows, row borders, dates, or the ETT protocol (train
[0, 12 months), val [12, 16), test [16, 20) of 30-day months; 8640 / 11520 / 14400 rows hourly). A
window's targets lie in its split; with ``context: previous`` (the literature's choice) the
lookback of the first val/test windows reads the rows just before the split, with ``split`` it
stays inside. Every window is scored. The scaler is fitted on the training rows only and saved in
the run (``series.json``), with the columns, the frequency and the resolved data file, so ``rnnlab
eval`` and ``rnnlab forecast`` use exactly what training used. Metrics and baselines: see
``series_eval.py``; the baselines on the test (and val) windows are in the summary under
``data.baselines``.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Optional, Union

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from rnnlab.errors import ConfigError, DataError
from rnnlab.registry import TASKS
from rnnlab.rundir import files as runs
from rnnlab.tasks.base import (
    Batch,
    DataOptions,
    Encoding,
    Task,
    TaskContext,
    TaskOptions,
    TaskSpec,
    batch_indices,
)
from rnnlab.tasks.forecasting import (
    Mode,
    WindowNorm,
    batched,
    native_horizon,
    predict,
    window_index,
    windows_in,
)
from rnnlab.tasks.series_checks import SeriesChecks
from rnnlab.tasks.series_eval import (
    BASELINES,
    baseline_forecasts,
    fit_linear,
    forecast_metrics,
    per_step_mse,
    seasonal_scale,
)
from rnnlab.tasks.series_files import (
    Fill,
    Scaler,
    Series,
    frequency_from_json,
    parse_time,
    read_series,
    read_series_artifact,
)
from rnnlab.tasks.series_source import BUILTIN, columns_for, resolve_path  # noqa: F401 - BUILTIN re-exported

if TYPE_CHECKING:
    from rnnlab.config.loading import Experiment
    from rnnlab.models.base import Model

SPLITS = ("train", "val", "test")
ARTIFACT = "series.json"
ETT_MONTHS = (12, 16, 20)  # split ends in 30-day months


class SeriesOptions(TaskOptions):
    name: Literal["series"] = "series"
    lookback: int = Field(96, gt=0, description="past rows read per window (L)")
    horizon: int = Field(96, gt=0, description="future rows forecast per window (H)")
    mode: Mode = Field("direct", description="direct (all H at once) | rollout (fed back) | "
                       "encoder_decoder (model seq2seq)")
    split: Literal["fractions", "rows", "dates", "ett"] = "fractions"
    val_fraction: float = Field(0.1, gt=0, lt=1, description="split fractions: validation share")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="split fractions: test share")
    borders: Optional[list[Union[int, str]]] = Field(
        None, description="split rows/dates: first val row, first test row[, end]")
    context: Literal["previous", "split"] = Field(
        "previous", description="val/test lookback may read the rows before the split (previous)")
    scaling: Literal["standard", "minmax", "none"] = "standard"
    window_norm: Literal["auto", "none", "last", "mean"] = Field(
        "auto", description="per-window normalisation around the model (auto: the model's own)")
    period: Optional[int] = Field(None, gt=0, description="seasonal period (default: from the frequency)")
    loss: Literal["mse", "mae"] = "mse"

    @model_validator(mode="after")
    def _check(self) -> "SeriesOptions":
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        if self.split in ("rows", "dates"):
            if self.borders is None or len(self.borders) not in (2, 3):
                raise ValueError(f"borders: split '{self.split}' needs [first val, first test] or "
                                 "[first val, first test, end]")
            kind = int if self.split == "rows" else str
            if not all(isinstance(b, kind) for b in self.borders):
                what = "row numbers" if kind is int else "dates"
                raise ValueError(f"borders: split '{self.split}' needs {what}")
        elif self.borders is not None:
            raise ValueError(f"borders: only split 'rows' or 'dates' uses borders (split is '{self.split}')")
        return self


class SeriesData(DataOptions):
    path: Optional[str] = Field(None, description="CSV/TSV file, relative to the data root or the "
                                "current folder (default: the built-in Mauna Loa CO2 series)")
    encoding: Encoding = "utf-8"
    time_column: Optional[str] = Field(None, description="timestamps (built-in series: date)")
    targets: Optional[Union[str, list[str]]] = Field(None, description="columns forecast")
    inputs: Optional[Union[Literal["M", "S", "MS"], list[str]]] = Field(
        None, description="columns read (default every numeric column); M, S, MS shorthands")
    fill: Fill = Field("none", description="missing cells and gaps: none (an error) | ffill | interpolate")

    @field_validator("inputs", "targets")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        """A list of columns: at least one, each named once."""
        if isinstance(value, list):
            if not value:
                raise ValueError("must list at least one column (or leave it out for the default)")
            twice = next((c for i, c in enumerate(value) if c in value[:i]), None)
            if twice is not None:
                raise ValueError(f"column {twice!r} is listed twice")
        return value


@TASKS.register("series", "forecast any CSV/TSV series (M/S/MS), ETT protocol, baselines in every run")
class SeriesTask(SeriesChecks, Task):
    Options = SeriesOptions
    DataOptions = SeriesData
    options: SeriesOptions
    data: SeriesData

    @classmethod
    def check_compatible(cls, exp: "Experiment", where: str) -> None:
        o: SeriesOptions = exp.task  # type: ignore[assignment]
        native, name = native_horizon(exp.model.name), exp.model.name
        if o.mode == "encoder_decoder" and name != "seq2seq":
            raise ConfigError(where, f"task.mode: encoder_decoder needs model.name seq2seq, got '{name}'")
        if name == "seq2seq" and o.mode != "encoder_decoder":
            raise ConfigError(where, "task.mode: model seq2seq is an encoder-decoder; "
                              "set mode: encoder_decoder")
        if o.mode == "rollout" and native:
            raise ConfigError(where, f"task.mode: model '{name}' forecasts all steps at once; "
                              "use mode: direct")

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        super().__init__(options, data, context)
        o, d = self.options, self.data
        saved = read_series_artifact(self.run_dir / ARTIFACT) if self.run_dir else None
        try:
            self.path = resolve_path(d)
        except DataError:
            if saved is None:
                raise
            self.path = Path(saved["path"])
        if saved is not None and not self.path.exists():
            self.path = Path(saved["path"])  # trained with another data root: the file it used
        self.time_column = d.time_column or ("date" if d.path is None else None)
        if saved is not None:  # eval/forecast: the run's own columns and scaler; data read when needed
            self.inputs, self.targets = list(saved["inputs"]), list(saved["targets"])
            self.scaler = Scaler.from_json(saved["scaler"])
            self.freq = frequency_from_json(saved["frequency"])
        else:
            self.inputs, self.targets = columns_for(d, self.series.columns)
        self.target_idx = [self.inputs.index(t) for t in self.targets]
        if o.mode in ("rollout", "encoder_decoder") and self.target_idx != list(range(len(self.inputs))):
            raise ConfigError("data.targets", f"mode {o.mode} feeds forecasts back as inputs, so the "
                              "targets must be all the inputs, in their order (inputs: M or S)")
        if saved is None:
            self.freq = self.series.freq
            self.scaler = Scaler.fit(o.scaling, self.values[:self.bounds["train"][1]])
        self.period = o.period or self.freq.default_period()
        if self.period > o.lookback:
            if o.period is not None:
                raise ConfigError("task.period", f"{o.period} is longer than the lookback ({o.lookback})")
            self.period = 1
        model_norm = "last" if native_horizon(context.model) else "none"
        self.norm = WindowNorm(model_norm if o.window_norm == "auto" else o.window_norm, self.target_idx)
        c_in, c_out = len(self.inputs), len(self.targets)
        direct_flat = o.mode == "direct" and not native_horizon(context.model)
        self.spec = TaskSpec(
            input_kind="features", input_size=c_in, output_size=o.horizon * c_out if direct_flat else c_out,
            output="last" if direct_flat else "horizon", causal=True, metric="mse", mode="min",
            window=o.lookback, horizon=o.horizon, targets=tuple(self.target_idx))
        if saved is None:
            _ = self.index  # every data error before the run directory exists

    # ------------------------------------------------------------------ the data (read when needed)
    @cached_property
    def series(self) -> Series:
        d = self.data
        cols = list(d.inputs) if isinstance(d.inputs, list) else None  # else every numeric column
        if cols is None and hasattr(self, "inputs"):
            cols = self.inputs
        return read_series(self.path, d.encoding, self.time_column, cols, d.fill, "data.path")

    @cached_property
    def values(self) -> np.ndarray:
        return self.series.column(self.inputs)

    @cached_property
    def bounds(self) -> dict[str, tuple[int, int]]:
        return self._bounds(len(self.values))

    @cached_property
    def scaled(self) -> torch.Tensor:
        return torch.from_numpy(self.scaler.transform(self.values)).float().to(self.device)

    @cached_property
    def index(self) -> dict[str, tuple[torch.Tensor, ...]]:
        return {split: tuple(t.to(self.device) for t in self._window_index(split)) for split in SPLITS}

    @cached_property
    def mase_scale(self) -> torch.Tensor:
        return seasonal_scale(self.values[:self.bounds["train"][1]][:, self.target_idx], self.period)

    # ------------------------------------------------------------------ splits and windows
    def _bounds(self, n: int) -> dict[str, tuple[int, int]]:
        o, where = self.options, f"{self.path}"
        if n < o.lookback + o.horizon:
            raise DataError(self.path, f"{n} rows, fewer than lookback + horizon = "
                            f"{o.lookback} + {o.horizon} (one window)")
        if o.split == "fractions":
            n_val, n_test = round(n * o.val_fraction), round(n * o.test_fraction)
            a, b, c = n - n_val - n_test, n - n_test, n
        elif o.split == "ett":
            per_day = self.freq.rows_per_day()
            if per_day is None:
                raise ConfigError("task.split", f"'ett' needs an hourly or sub-daily series; {where} is "
                                  f"{self.freq.label()}")
            a, b, c = (m * 30 * per_day for m in ETT_MONTHS)
        elif o.split == "rows":
            a, b, c = (*o.borders, n)[:3]  # type: ignore[misc]
        else:
            a, b, c = self._date_rows()
        if not 0 < a < b < c <= n:
            raise ConfigError("task.split", f"split ends {a}, {b}, {c} must increase within the "
                              f"{n} rows of {where}")
        return {"train": (0, a), "val": (a, b), "test": (b, c)}

    def _date_rows(self) -> tuple[int, int, int]:
        times = self.series.times
        if times is None:
            raise ConfigError("task.borders", "split 'dates' needs data.time_column")
        out = []
        for value in self.options.borders or []:
            t = parse_time(str(value))
            if t is None:
                raise ConfigError("task.borders", f"not a date: {value!r}")
            out.append(next((i for i, s in enumerate(times) if s >= t), len(times)))
        return tuple([*out, len(times)][:3])  # type: ignore[return-value]

    def _context(self, split: str) -> int:
        start = self.bounds[split][0]
        reads_before = split != "train" and self.options.context == "previous"
        return start - self.options.lookback if reads_before else start

    def _window_index(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.options
        start, stop = self.bounds[split]
        if windows_in(start, stop, o.lookback, o.horizon, self._context(split)) == 0:
            raise DataError(self.path, f"the {split} split (rows {start}..{stop - 1}, {stop - start} rows) "
                            f"is too short for one window of lookback {o.lookback} + horizon {o.horizon}")
        return window_index(start, stop, o.lookback, o.horizon, self._context(split))

    def gather(self, split: str, rows: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x_idx, y_idx = self.index[split]
        return self.scaled[x_idx[rows]], self.scaled[y_idx[rows]][:, :, self.target_idx]

    # ------------------------------------------------------------------ training
    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.index["train"][0]) / batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        for idx in batch_indices(len(self.index["train"][0]), batch_size, generator):
            x, y = self.gather("train", idx.to(self.device))
            yield Batch(x, y)

    def predict(self, model: "Model", x: torch.Tensor) -> torch.Tensor:
        """Forecasts (B, H, C_targets) on the scaled values."""
        o = self.options
        return self.norm.apply(x, lambda z: predict(model, z, self.spec, o.horizon, len(self.targets)))

    def loss(self, model: "Model", batch: Batch, state: Any = None) -> tuple[torch.Tensor, Any]:
        pred = self.predict(model, batch.x)
        fn = torch.nn.functional.l1_loss if self.options.loss == "mae" else torch.nn.functional.mse_loss
        return fn(pred.float(), batch.y), None

    def tokens(self, batch: Batch) -> int:
        return int(batch.y.shape[0] * batch.y.shape[1])

    # ------------------------------------------------------------------ evaluation
    def to_units(self, scaled: torch.Tensor) -> torch.Tensor:
        shift = torch.from_numpy(self.scaler.shift[self.target_idx]).to(scaled)
        scale = torch.from_numpy(self.scaler.scale[self.target_idx]).to(scaled)
        return scaled * scale + shift

    def predictions(self, model: "Model", split: str, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(pred, y), both (N, H, C_targets) scaled, over every window of the split."""
        n = len(self.index[split][0])
        preds, ys = [], []
        for rows in batched(n, batch_size):
            x, y = self.gather(split, rows)
            preds.append(self.predict(model, x).float())
            ys.append(y)
        return torch.cat(preds), torch.cat(ys)

    def evaluate(self, model: "Model", split: str, batch_size: int) -> dict[str, float]:
        pred, y = self.predictions(model, split, batch_size)
        pred, y = pred.cpu(), y.cpu()
        m = forecast_metrics(pred, y, self.to_units, self.mase_scale)
        m["loss"] = m["mae"] if self.options.loss == "mae" else m["mse"]
        if split in self.baselines:  # val and test (the train split has no baseline row)
            best = min(b["mse"] for b in self.baselines[split].values())
            m["mse_vs_best_baseline"] = m["mse"] / best if best > 0 else float("nan")
        m["windows"] = float(len(y))
        return m

    @cached_property
    def linear_weights(self) -> torch.Tensor:
        x, y = self.gather("train", slice(None))
        return fit_linear(x[:, :, self.target_idx].cpu(), y.cpu())

    def baseline_predictions(self, split: str) -> dict[str, torch.Tensor]:
        x, _ = self.gather(split, slice(None))
        mean = torch.from_numpy(self.scaler.transform(self.values[:self.bounds["train"][1]]).mean(axis=0))
        return baseline_forecasts(x[:, :, self.target_idx].cpu(), self.options.horizon, self.period,
                                  mean[self.target_idx].float(), self.linear_weights)

    @cached_property
    def baselines(self) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for split in ("val", "test"):
            _, y = self.gather(split, slice(None))
            preds = self.baseline_predictions(split)
            out[split] = {name: forecast_metrics(preds[name], y.cpu(), self.to_units, self.mase_scale)
                          for name in BASELINES if name in preds}
        return out

    def describe(self) -> dict[str, Any]:
        s = self.series
        out: dict[str, Any] = {
            "path": str(self.path), "rows": len(s), "frequency": s.freq.label(),
            "first": str(s.times[0]) if s.times else None, "last": str(s.times[-1]) if s.times else None,
            "inputs": self.inputs, "targets": self.targets, "filled_cells": s.filled, "gap_rows": s.gap_rows,
            "scaling": self.options.scaling, "window_norm": self.norm.kind, "period": self.period,
        }
        for split in SPLITS:
            out[split] = {"rows": list(self.bounds[split]), "windows": int(len(self.index[split][0]))}
        out["baselines"] = self.baselines
        return out

    # ------------------------------------------------------------------ artifacts and plots
    def artifact(self) -> dict[str, Any]:
        return {"path": str(self.path.resolve()), "time_column": self.time_column, "inputs": self.inputs,
                "targets": self.targets, "frequency": self.freq.to_json(), "period": self.period,
                "scaler": self.scaler.to_json(), "lookback": self.options.lookback,
                "horizon": self.options.horizon}

    def save_artifacts(self, run_dir: Path) -> None:
        runs.write_json(run_dir / ARTIFACT, self.artifact())

    def plots(self, model: "Model", run_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        from rnnlab.tasks.series_plots import error_by_step_plot, test_forecasts_plot

        pred, y = (t.cpu() for t in self.predictions(model, "test", 1024))
        steps = {"model": per_step_mse(pred, y)}
        steps.update({k: per_step_mse(v, y) for k, v in self.baseline_predictions("test").items()})
        return [test_forecasts_plot(self, pred, run_dir / runs.PLOTS / "forecasts.png"),
                error_by_step_plot(steps, run_dir / runs.PLOTS / "error_by_step.png")]

    def history_units(self, rows: np.ndarray) -> np.ndarray:
        return self.values[rows][:, self.target_idx]
