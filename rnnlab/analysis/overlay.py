"""``rnnlab compare RUN... --plot [FILE]``: the learning curves of several runs overlaid in one
figure (training loss, and each run's validation metric, per epoch; one line per run in each
panel). It reads only the runs' ``metrics.jsonl`` and ``summary.json`` and never writes into a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rnnlab.common.outputs import check_outputs
from rnnlab.errors import ConfigError, RnnlabError
from rnnlab.rundir import files as runs

DEFAULT_PLOT = "compare.png"
FORMATS = (".png", ".svg", ".pdf")


def check_output(path: Path, force: bool, where: str = "--plot") -> Path:
    """Where a figure of several runs may go: a .png/.svg/.pdf file, then the project's output rule
    (``outputs.check_outputs``: not a directory, never inside a run, no overwrite without ``force``)."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(where, f"must name a {', '.join(FORMATS)} file, got {str(path)!r}")
    return check_outputs([path], where, force=force)[0]


def plot_target(args: list[Path], plot: bool, force: bool) -> tuple[list[Path], Optional[Path]]:
    """``compare RUN... --plot [FILE]``: split the arguments into the runs and the figure file (the
    argument ending in .png/.svg/.pdf that is not a directory; ``DEFAULT_PLOT`` without one), and
    check the file. Without ``--plot``, such an argument is a mistake said as such."""
    files = [a for a in args if a.suffix.lower() in FORMATS and not a.is_dir()]
    if not plot:
        if force:
            raise ConfigError("--force", "only with --plot")
        if files:
            raise ConfigError(files[0], f"is not a run directory; to write the figure there: "
                              f"--plot {files[0]}")
        return args, None
    if len(files) > 1:
        raise ConfigError("--plot", f"one figure file, got {len(files)}: {', '.join(map(str, files))}")
    out = check_output(files[0] if files else Path(DEFAULT_PLOT), force)
    return [a for a in args if a not in files], out


@dataclass
class Curve:
    label: str
    metric: Optional[str]
    epochs: list[int]
    train_loss: list[Optional[float]]
    val: list[Optional[float]]  # the run's own metric on validation, per epoch


def read_curves(dirs: list[Path], labels: list[str]) -> list[Curve]:
    """One curve per run; a run without a completed epoch (or unreadable) is an error naming it."""
    curves = []
    for run_dir, label in zip(dirs, labels):
        rows = runs.read_metrics(run_dir)
        if not rows:
            raise RnnlabError(run_dir / runs.METRICS, "no completed epoch to plot")
        try:
            metric = runs.read_summary(run_dir).get("metric")
        except RnnlabError:
            metric = None  # the curves are still in metrics.jsonl
        key = f"val_{metric}" if metric else "val_loss"
        curves.append(Curve(label, metric or "loss", [int(r["epoch"]) for r in rows],
                            [r.get("train_loss") for r in rows], [r.get(key) for r in rows]))
    return curves


def overlay_figure(curves: list[Curve]) -> Any:
    """The figure: training loss (left) and validation metric (right), one line per run each."""
    from matplotlib.ticker import MaxNLocator

    from rnnlab.common.plots import _spans_decades, plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    metrics = list(dict.fromkeys(c.metric for c in curves))
    for i, c in enumerate(curves):
        style = {"color": f"C{i % 10}", "marker": "o" if len(c.epochs) <= 30 else None, "lw": 1.5}
        left.plot(c.epochs, c.train_loss, label=c.label, **style)
        label = c.label if len(metrics) == 1 else f"{c.label} ({c.metric})"
        right.plot(c.epochs, c.val, label=label, **style)
    losses = [v for c in curves for v in c.train_loss]
    left.set(title="training loss", xlabel="epoch", yscale="log" if _spans_decades(losses) else "linear")
    right.set(title=f"validation {metrics[0]}" if len(metrics) == 1 else "validation metric (per run)",
              xlabel="epoch")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.legend(fontsize=8)
    return fig


def plot_overlay(dirs: list[Path], labels: list[str], out: Path) -> Path:
    """Write the figure to ``out`` (checked with ``check_output`` before) and return it."""
    from rnnlab.common.plots import _save

    fig = overlay_figure(read_curves(dirs, labels))
    if out.suffix.lower() == ".png":
        return _save(fig, out)
    from rnnlab.common.atomic import atomic_write

    fig.tight_layout()
    atomic_write(out, lambda fh: fig.savefig(fh, format=out.suffix[1:].lower()))
    return out
