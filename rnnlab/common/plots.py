"""Matplotlib figures (headless, Agg). Each function writes one PNG and returns its path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import torch


class _Figures:
    """The two pyplot calls rnnlab draws with (``plt.subplots``, ``plt.close``), without importing
    ``matplotlib.pyplot``: its import (backend selection, the global figure manager) is a good part
    of a short run's start-up, and headless PNGs need none of it. Figures are plain Agg figures that
    nothing global keeps, so closing one is letting it go."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, *, figsize: Any = None, dpi: Any = None,
                 **grid: Any) -> tuple[Figure, Any]:
        fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(fig)
        return fig, fig.subplots(nrows, ncols, **grid)

    @staticmethod
    def close(fig: Any) -> None:
        """Nothing to release: no figure manager holds the figure."""


plt = _Figures()


def _save(fig: Any, path: Path, margins: Optional[dict[str, float]] = None) -> Path:
    """Write ``fig`` as a PNG and close it. ``margins`` (``subplots_adjust`` arguments): a fixed
    layout for a figure drawn on every run, instead of ``tight_layout``, which measures every label
    (a good part of a short run's start-up)."""
    from rnnlab.common.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    if margins is None:
        fig.tight_layout()
    else:
        fig.subplots_adjust(**margins)
    # a figure is drawn again from the run's files (``rnnlab plot``): no fsync (disk flushes cost
    # a short run more than drawing does)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110), durable=False)
    plt.close(fig)
    return path


def _spans_decades(values: list[Any]) -> bool:
    finite = [v for v in values if isinstance(v, (int, float)) and v > 0 and v == v]
    return bool(finite) and max(finite) / min(finite) > 30


def _plain_log_labels(ax: Any) -> None:
    """Log-scale tick labels as plain numbers (0.01, 1, 100): no mathtext, whose parser costs
    more to start than the whole figure takes to draw."""
    from matplotlib.ticker import LogFormatter

    class PlainLog(LogFormatter):
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:  # 0.1, not 1e-01
            return f"{x:g}"

    if ax.get_yscale() == "log":
        ax.yaxis.set_major_formatter(PlainLog(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(PlainLog(labelOnlyBase=False))


def learning_curves(history: list[dict[str, Any]], path: Path, metric: str,
                    clip: Optional[float]) -> Path:
    """Loss (train/val), the task metric, learning rate and the pre-clip gradient norm with the
    clip threshold and the fraction of steps clipped, per epoch. Drawn after every run, so laid out
    with fixed margins and plain log-scale labels (cheap)."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0][0]
    train, val = [r["train_loss"] for r in history], [r.get("val_loss") for r in history]
    ax.plot(epochs, train, "o-", label="train")
    ax.plot(epochs, val, "o-", label="val")
    ax.set(title="loss", xlabel="epoch", yscale="log" if _spans_decades(train + val) else "linear")
    ax.legend()
    ax = axes[0][1]
    ax.plot(epochs, [r.get(f"val_{metric}") for r in history], "o-", color="C1")
    ax.set(title=f"val {metric}", xlabel="epoch")
    ax = axes[1][0]
    ax.plot(epochs, [r["lr"] for r in history], "o-", color="C2")
    ax.set(title="learning rate (end of epoch)", xlabel="epoch")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax = axes[1][1]
    ax.plot(epochs, [r["grad_norm_mean"] for r in history], "o-", label="mean")
    ax.plot(epochs, [r["grad_norm_max"] for r in history], "o-", label="max")
    if clip:
        ax.axhline(clip, color="red", linestyle="--", label=f"clip threshold {clip:g}")
        rate = ax.twinx()
        rate.bar(epochs, [r["clip_frac"] for r in history], width=0.6, alpha=0.2, color="red",
                 label="steps clipped (right)")
        rate.set(ylim=(0, 1), ylabel="fraction of steps clipped")
        ax.set_zorder(rate.get_zorder() + 1)  # lines over the bars
        ax.patch.set_visible(False)
        handles, labels = ax.get_legend_handles_labels()
        extra, extra_labels = rate.get_legend_handles_labels()
        ax.legend(handles + extra, labels + extra_labels, fontsize=8)
    else:
        ax.legend(fontsize=8)
    ax.set(title="gradient norm before clipping", xlabel="epoch", yscale="log")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        _plain_log_labels(ax)
    margins = dict(left=0.065, right=0.93 if clip else 0.98, bottom=0.085, top=0.95, wspace=0.17, hspace=0.3)
    return _save(fig, path, margins)


def bpc_curve(history: list[dict[str, Any]], path: Path) -> Path:
    """Character LM: bits per character (loss / ln 2) on the training windows and on the whole
    validation text, per epoch, with the best validation value in the legend."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    train = [row["train_loss"] / math.log(2) for row in history]
    val = [row.get("val_bpc") for row in history]
    scored = [(v, e) for v, e in zip(val, epochs) if v is not None]
    best = f" (best {min(scored)[0]:.3f}, epoch {min(scored)[1]})" if scored else ""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, train, "o-", label="train (with dropout)")
    ax.plot(epochs, val, "o-", label=f"val{best}")
    ax.set(title="bits per character", xlabel="epoch", ylabel="bpc")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


# the sine figures' fixed layout (one 10 x 4 in panel; what tight_layout finds for their labels)
SINE_MARGINS = dict(left=0.08, right=0.985, bottom=0.145, top=0.91)


def sine_forecast_plot(task: Any, p: dict[str, "torch.Tensor"], path: Path) -> Path:
    """One-step (or first-step) predictions against the noisy and clean series on the test split."""
    pos = p["pos"][:, 0].cpu().numpy()
    fig, ax = plt.subplots(figsize=(10, 4))
    start, stop = task.bounds["test"]
    ax.plot(range(start, stop), task.series[start:stop].numpy(), ".", color="0.6", label="observed")
    ax.plot(range(start, stop), task.clean[start:stop].numpy(), "-", color="black", label="sin(ωt)")
    if p["pos"].shape[1] > 1 and task.options.mode == "seq2seq":
        pos = p["pos"][0].cpu().numpy()
        pred = p["pred"][0, :, 0].cpu().numpy()
    else:
        pred = p["pred"][:, 0, 0].cpu().numpy()
    ax.plot(pos, pred, "-", color="C3", label="prediction (1 step ahead)")
    ax.set(title="test split: one-step forecast", xlabel="t", ylabel="y")
    ax.legend()
    return _save(fig, path, SINE_MARGINS)


def sine_rollout_plot(task: Any, p: dict[str, "torch.Tensor"], path: Path) -> Path:
    """A few multi-step forecasts from different starting points against the truth."""
    n = p["pred"].shape[0]
    picks = sorted({int(i) for i in (0, n // 3, 2 * n // 3, n - 1)})
    start, stop = task.bounds["test"]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(range(start, stop), task.series[start:stop].numpy(), ".", color="0.6", label="observed")
    ax.plot(range(start, stop), task.clean[start:stop].numpy(), "-", color="black", label="sin(ωt)")
    for k, i in enumerate(picks):
        ax.plot(p["pos"][i].cpu().numpy(), p["pred"][i, :, 0].cpu().numpy(), "-", lw=2,
                color=f"C{k + 1}", label=f"rollout from t={int(p['pos'][i, 0]) - 1}")
    ax.set(title=f"test split: {task.options.horizon}-step rollouts", xlabel="t", ylabel="y")
    ax.legend(fontsize=8)
    return _save(fig, path, SINE_MARGINS)


def gradflow_plot(curves: list[Any], path: Path) -> Path:
    """||dL/dh_t|| against t on a log scale, one panel per layer; a colour per config or run,
    dashed at initialisation and solid after training."""
    layers = sorted({c.layer for c in curves})
    labels = list(dict.fromkeys(c.label for c in curves))
    fig, axes = plt.subplots(len(layers), 1, figsize=(10, 3.6 * len(layers)), squeeze=False)
    for ax, layer in zip(axes[:, 0], layers):
        for c in (c for c in curves if c.layer == layer):
            style = "--" if c.stage == "init" else "-"
            ax.plot(range(len(c.norms)), c.norms, style, lw=1.6, color=f"C{labels.index(c.label)}",
                    label=f"{c.label} ({c.stage})")
        ax.set(yscale="log", xlabel="time step t", ylabel="mean ‖∂L/∂h_t‖",
               title=f"gradient reaching each time step: {layer}")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_matrix_plot(matrix: "torch.Tensor", labels: list[str], path: Path, title: str) -> Path:
    """Counts (row = true class, column = predicted), shaded by the fraction of each true class,
    with the per-class accuracy beside each row."""
    counts = matrix.cpu().numpy()
    rates = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    n = len(labels)
    # room for the title and the row labels even with two classes
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.6 * n), max(3.6, 0.6 * n + 0.8)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), [f"{label} ({rates[i, i]:.1%})" for i, label in enumerate(labels)])
    accuracy = counts.trace() / max(counts.sum(), 1)
    ax.set(xlabel="predicted", ylabel="true (per-class accuracy)",
           title=f"{title}: accuracy {accuracy:.2%}, {int(counts.sum() - counts.trace())} errors")
    return _save(fig, path)
