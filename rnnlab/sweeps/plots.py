"""The sweep's figure: the ranking metric against one swept parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from rnnlab.common.plots import _save, plt
from rnnlab.sweeps.spec import show


def _numeric(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def sweep_param_plot(points: list[tuple[Any, float]], key: str, metric: str, mode: str, path: Path,
                     log_x: bool = False, bars: Optional[list[tuple[Any, float, float]]] = None) -> Path:
    """Every trial as a dot at (value of ``key``, metric); where a value was tried with several
    settings of the other keys, a line joins the best trial per value. With ``bars`` (value, mean,
    std) per configuration (repeats over seeds): error bars at mean ± std, and the line joins the
    best mean per value."""
    numeric = all(_numeric(x) for x, _ in points)
    labels = list(dict.fromkeys(show(x) for x, _ in points))
    xs = [x if numeric else labels.index(show(x)) for x, _ in points]
    ys = [y for _, y in points]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.scatter(xs, ys, alpha=0.35 if bars else 0.7, label="trial")
    groups: dict[Any, list[float]] = {}
    if bars:
        bx = [x if numeric else labels.index(show(x)) for x, _, _ in bars]
        ax.errorbar(bx, [m for _, m, _ in bars], yerr=[s for _, _, s in bars], fmt="o", color="C1",
                    capsize=4, label="configuration: mean ± std")
        for x, (_, mean, _) in zip(bx, bars):
            groups.setdefault(x, []).append(mean)
        ax.legend()
    else:
        for x, y in zip(xs, ys):
            groups.setdefault(x, []).append(y)
    if any(len(v) > 1 for v in groups.values()):
        pick = min if mode == "min" else max
        best = sorted((x, pick(v)) for x, v in groups.items())
        ax.plot([b[0] for b in best], [b[1] for b in best], "-", color="C3",
                label=f"best {'mean ' if bars else ''}per value ({mode})")
        ax.legend()
    if not numeric:
        ax.set_xticks(range(len(labels)), labels)
    elif log_x and min(xs) > 0:
        ax.set_xscale("log")
    if min(ys) > 0 and max(ys) > 10 * min(ys):  # errors spread over decades read better on a log axis
        ax.set_yscale("log")
    ax.set(title=f"{metric} vs {key}", xlabel=key, ylabel=metric)
    return _save(fig, path)
