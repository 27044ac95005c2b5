"""Figures of the ``series`` task and of ``rnnlab forecast`` (headless, one PNG each)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from rnnlab.common.plots import _save, _spans_decades, plt

if TYPE_CHECKING:
    import torch


def test_forecasts_plot(task: Any, pred: "torch.Tensor", path: Path, channels: int = 3,
                        windows: int = 3) -> Path:
    """A few test windows (rows) for a few target channels (columns): lookback and truth against
    the forecast, in the data's units."""
    n, horizon, c = pred.shape
    picks = sorted({int(i) for i in (0, n // 2, n - 1)})[:windows]
    chans = list(range(min(channels, c)))
    x_idx, y_idx = (t.cpu() for t in task.index["test"])
    units = task.to_units(pred.double()).numpy()
    fig, axes = plt.subplots(len(picks), len(chans), figsize=(4.2 * len(chans), 2.6 * len(picks)),
                             squeeze=False)
    for r, i in enumerate(picks):
        for k, ch in enumerate(chans):
            ax = axes[r][k]
            xs, ys = x_idx[i].numpy(), y_idx[i].numpy()
            ax.plot(xs, task.history_units(xs)[:, ch], color="0.5", lw=1, label="lookback")
            ax.plot(ys, task.history_units(ys)[:, ch], color="black", lw=1.2, label="truth")
            ax.plot(ys, units[i, :, ch], color="C3", lw=1.4, label="forecast")
            ax.set_title(f"{task.targets[ch]}, window {i}", fontsize=9)
            ax.tick_params(labelsize=7)
            if r == 0 and k == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"test forecasts, {horizon} steps ahead (x: row)", fontsize=10)
    return _save(fig, path)


def error_by_step_plot(curves: dict[str, Sequence[float]], path: Path) -> Path:
    """MSE (scaled) at each horizon step over the test windows: the model and the baselines."""
    fig, ax = plt.subplots(figsize=(8, 4))
    colours = iter(["C0", "C1", "C2", "C4", "C5", "C6"])  # C3 (red) is the model's
    for name, values in curves.items():
        model = name == "model"
        ax.plot(range(1, len(values) + 1), values, lw=2.2 if model else 1.2,
                color="C3" if model else next(colours), ls="-" if model else "--",
                label=f"{name} (mean {sum(values) / len(values):.3f})")
    every = [v for values in curves.values() for v in values]
    ax.set(title="test MSE by horizon step (scaled values)", xlabel="steps ahead", ylabel="MSE",
           yscale="log" if _spans_decades(every) else "linear")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def forecast_plot(history_t: Sequence[Any], history: Any, future_t: Sequence[Any], future: Any,
                  names: Sequence[str], path: Path, title: Optional[str] = None) -> Path:
    """The recent history and the forecast after it, one panel per target column."""
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.8 * len(names)), squeeze=False)
    for k, name in enumerate(names):
        ax = axes[k][0]
        ax.plot(history_t, history[:, k], color="black", lw=1.2, label="history")
        ax.plot(future_t, future[:, k], color="C3", lw=1.6, label="forecast")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if k == 0:
            ax.legend(fontsize=8)
            ax.set_title(title or "forecast")
    if history_t and isinstance(history_t[0], datetime):
        fig.autofmt_xdate()
    return _save(fig, path)
