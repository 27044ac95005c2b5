"""Noisy sine forecasting: y_t = sin(omega t) + eps, eps ~ N(0, sigma^2), split 60/20/20 in time.

Modes
- ``window``:  ``window`` past values -> the next value (the MLP baseline and RNNs).
- ``seq2seq``: read a long window and predict the next value at every step (state carried along the
  window; the first ``warmup`` steps are burn-in); validation/test predict each target from the
  ``seq_len`` values before it (``eval_context``: ``window``, ``series`` or ``split``).
- ``rollout``: ``window`` past values -> the next ``horizon`` values, predictions fed back
  (autoregressive RNNs/MLP) or produced by the encoder-decoder (``model.name: seq2seq``).

Windows and the multi-step prediction come from the forecasting base (``tasks/forecasting.py``)
that the ``series`` task uses too.

Training windows (inputs and targets) lie inside the training split; in window/rollout modes no
val/test window crosses its split either. Metrics: ``mse`` against the noisy targets,
``mse_clean`` against the noise-free signal and ``mse_over_noise`` = mse / mean(eps^2) over the
same targets, so 1.0 is the floor no forecaster can beat on that sample.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal

import torch
from pydantic import Field, model_validator

from rnnlab.errors import ConfigError
from rnnlab.registry import TASKS
from rnnlab.tasks.base import Batch, DataOptions, Task, TaskContext, TaskOptions, TaskSpec, batch_indices
from rnnlab.tasks.forecasting import batched, window_index
from rnnlab.tasks.forecasting import predict as forecast
from rnnlab.tasks.sine_checks import SineChecks

if TYPE_CHECKING:
    from rnnlab.config.loading import Experiment
    from rnnlab.models.base import Model

SPLITS = ("train", "val", "test")


class SineOptions(TaskOptions):
    name: Literal["sine"] = "sine"
    mode: Literal["window", "seq2seq", "rollout"] = "window"
    n_points: int = Field(1000, ge=100, description="length of the series")
    omega: float = Field(0.01, gt=0, description="angular frequency per step")
    sigma: float = Field(0.2, ge=0, description="noise std (0: noise-free)")
    window: int = Field(4, gt=0, description="window/rollout: past values read (tau)")
    horizon: int = Field(1, gt=0, description="rollout: future values predicted (> 1)")
    seq_len: int = Field(200, gt=1, description="seq2seq: training window length")
    stride: int = Field(1, gt=0, description="seq2seq: step between training windows")
    warmup: int = Field(10, ge=0, description="seq2seq: steps read from a zero state before scoring")
    eval_context: Literal["window", "series", "split"] = Field(
        "window", description="seq2seq val/test: each target predicted from the seq_len values before "
        "it (as in training), from the whole observed past, or from the split alone")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> "SineOptions":
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        if self.mode == "rollout" and self.horizon < 2:
            raise ValueError(f"horizon: mode 'rollout' needs horizon > 1, got {self.horizon}")
        if self.mode != "rollout" and self.horizon != 1:
            raise ValueError(f"horizon: only mode 'rollout' uses a horizon (got {self.horizon} "
                             f"with mode '{self.mode}')")
        return self


class SineData(DataOptions):
    pass


@TASKS.register("sine", "noisy sine forecasting: one-step windows, seq2seq, multi-step rollout")
class Sine(SineChecks, Task):
    Options = SineOptions
    DataOptions = SineData
    options: SineOptions

    @classmethod
    def check_compatible(cls, exp: "Experiment", where: str) -> None:
        o: SineOptions = exp.task  # type: ignore[assignment]
        n = o.n_points
        sizes = {"train": n - round(n * o.val_fraction) - round(n * o.test_fraction),
                 "val": round(n * o.val_fraction), "test": round(n * o.test_fraction)}
        need = {"window": o.window + 1, "rollout": o.window + o.horizon,
                "seq2seq": o.warmup + 2 if o.eval_context == "split" else 1}[o.mode]
        for split, size in sizes.items():
            if size < need + 1:
                raise ConfigError(where, f"task: the {split} split has {size} points, too few for "
                                  f"windows of {need} (lower task.window/horizon/warmup or raise n_points)")
        if o.mode == "seq2seq" and o.seq_len + 1 > sizes["train"]:
            raise ConfigError(where, f"task.seq_len: must fit in the train split "
                              f"({sizes['train']} points), got {o.seq_len}")

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        super().__init__(options, data, context)
        o = self.options
        gen = torch.Generator().manual_seed(self.seed)
        t = torch.arange(o.n_points, dtype=torch.float64)
        self.clean = torch.sin(o.omega * t).float()
        self.noise = (torch.randn(o.n_points, generator=gen, dtype=torch.float64) * o.sigma).float()
        self.series = self.clean + self.noise
        n_val, n_test = round(o.n_points * o.val_fraction), round(o.n_points * o.test_fraction)
        a, b = o.n_points - n_val - n_test, o.n_points - n_test
        self.bounds = {"train": (0, a), "val": (a, b), "test": (b, o.n_points)}
        self.windows = {split: self._windows(split) for split in SPLITS}
        output = {"window": "last", "seq2seq": "sequence", "rollout": "horizon"}[o.mode]
        self.spec = TaskSpec(
            input_kind="features", input_size=1, output_size=1, output=output,  # type: ignore[arg-type]
            causal=True, metric="mse", mode="min",
            window=None if o.mode == "seq2seq" else o.window,
            horizon=o.horizon if o.mode == "rollout" else None)

    # ------------------------------------------------------------------ data
    def _windows(self, split: str) -> dict[str, torch.Tensor]:
        """x (N, T, 1) inputs, y (N, K, 1) targets, clean (N, K, 1) noise-free targets, and the
        positions of the targets in the series, all inside the split."""
        o = self.options
        start, stop = self.bounds[split]
        idx = torch.arange(start, stop)
        if o.mode == "seq2seq":
            if split == "train":
                win = idx.unfold(0, o.seq_len + 1, o.stride)
            elif o.eval_context == "window":  # each target from the seq_len values just before it
                return self._gather(*window_index(start, stop, o.seq_len, 1, context_start=0))
            elif o.eval_context == "series":  # read the whole observed past; score this split only
                win = torch.arange(0, stop).unsqueeze(0)
            else:  # the split alone, from a zero state
                win = idx.unsqueeze(0)
            x_idx, y_idx = win[:, :-1], win[:, 1:]
        else:
            x_idx, y_idx = window_index(start, stop, o.window, o.horizon if o.mode == "rollout" else 1)
        return self._gather(x_idx, y_idx)

    def _gather(self, x_idx: torch.Tensor, y_idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "x": self.series[x_idx].unsqueeze(-1).to(self.device),
            "y": self.series[y_idx].unsqueeze(-1).to(self.device),
            "clean": self.clean[y_idx].unsqueeze(-1).to(self.device),
            "pos": y_idx,
        }

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.windows["train"]["x"]) / batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        data = self.windows["train"]
        for idx in batch_indices(len(data["x"]), batch_size, generator):
            idx = idx.to(self.device)
            yield Batch(data["x"][idx], data["y"][idx])

    # ------------------------------------------------------------------ model io
    def predict(self, model: "Model", x: torch.Tensor) -> torch.Tensor:
        """Predictions shaped like the targets: (N, 1, 1), (N, T, 1) or (N, H, 1)."""
        return forecast(model, x, self.spec, self.options.horizon, 1)

    def loss(self, model: "Model", batch: Batch, state: Any = None) -> tuple[torch.Tensor, Any]:
        pred, target = self.predict(model, batch.x), batch.y
        if self.options.mode == "seq2seq":  # burn-in: steps read from a zero state are not scored
            pred, target = pred[:, self.options.warmup:], target[:, self.options.warmup:]
        return torch.nn.functional.mse_loss(pred, target), None

    def tokens(self, batch: Batch) -> int:
        return int(batch.y.shape[0] * batch.y.shape[1])

    # ------------------------------------------------------------------ evaluation
    def predictions(self, model: "Model", split: str, batch_size: int) -> dict[str, torch.Tensor]:
        data = self.windows[split]
        preds = [self.predict(model, data["x"][b]) for b in batched(len(data["x"]), batch_size)]
        pred = torch.cat(preds)
        if pred.shape[1] != data["y"].shape[1]:  # seq2seq "window" context: score the last step
            pred = pred[:, -1:]
        skip = 0
        if self.options.mode == "seq2seq" and split != "train" and self.options.eval_context != "window":
            # series context: the target at position p is predicted at input index p - 1
            series = self.options.eval_context == "series"
            skip = self.bounds[split][0] - 1 if series else self.options.warmup
        return {"pred": pred[:, skip:], "y": data["y"][:, skip:], "clean": data["clean"][:, skip:],
                "pos": data["pos"][:, skip:]}

    def evaluate(self, model: "Model", split: str, batch_size: int) -> dict[str, float]:
        p = self.predictions(model, split, batch_size)
        err = (p["pred"] - p["y"]).double()
        mse = err.pow(2).mean().item()
        metrics = {"loss": mse, "mse": mse,
                   "mse_clean": (p["pred"] - p["clean"]).double().pow(2).mean().item()}
        noise = (p["y"] - p["clean"]).double().pow(2).mean().item()
        if noise > 0:
            metrics["mse_over_noise"] = mse / noise
        if self.options.mode == "rollout":
            metrics["mse_first_step"] = err[:, 0].pow(2).mean().item()
            metrics["mse_last_step"] = err[:, -1].pow(2).mean().item()
        metrics["targets"] = float(p["y"].numel())
        return metrics

    def describe(self) -> dict[str, Any]:
        return {split: {"range": list(self.bounds[split]), "samples": int(len(self.windows[split]["x"]))}
                for split in SPLITS}

    # ------------------------------------------------------------------ plots
    def plots(self, model: "Model", run_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        from rnnlab.common.plots import sine_forecast_plot, sine_rollout_plot

        out = []
        p = self.predictions(model, "test", 1024)
        if self.options.mode == "rollout":
            out.append(sine_rollout_plot(self, p, run_dir / "plots" / "rollout.png"))
            # the one-step-ahead view of the same model, over the whole test range
        out.append(sine_forecast_plot(self, p, run_dir / "plots" / "forecast.png"))
        return out
