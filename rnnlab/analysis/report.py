"""Looking at a finished (or running) run: ``rnnlab show RUN`` and ``rnnlab plot RUN``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rnnlab.common.console import fmt
from rnnlab.common.safeio import MAX_CONFIG_BYTES, read_bytes_bounded
from rnnlab.integrations.tensorboard import TENSORBOARD
from rnnlab.rundir import files as runs

FACTS = ("task", "model", "parameters", "device", "gpu", "precision", "threads", "seed",
         "epochs_completed", "best_epoch", "stopped_early", "steps", "train_seconds",
         "started", "finished")


def show_lines(run: str | os.PathLike[str]) -> list[str]:
    """The summary, the config, the last epoch's metrics and the plots, as text lines."""
    run_dir = runs.resolve_run(run)
    try:
        summary = runs.read_summary(run_dir)
        status = f"status {summary.get('status', '?')}"
        status += f": {summary['error']}" if summary.get("error") else ""
    except runs.RunDirError as exc:  # a damaged summary: say so and show the rest
        summary, status = {}, f"status unreadable ({exc.what})"
    lines = [f"run {run_dir}", status]
    lines += [f"  {key} {fmt(summary[key])}" for key in FACTS if summary.get(key) is not None]
    if summary.get("distributed"):
        d = summary["distributed"]
        lines.append(f"  distributed {d['world_size']} processes ({d['backend']})")
    for title, key in (("test", "test"), ("best val", "best_val")):
        if summary.get(key):
            lines.append(f"{title} " + " ".join(f"{k}={fmt(v)}" for k, v in summary[key].items()))
    lines += ["", f"config ({runs.CONFIG})"]
    config = read_bytes_bounded(run_dir / runs.CONFIG, MAX_CONFIG_BYTES, runs.CONFIG, runs.RunDirError)
    lines += ["  " + line for line in config.decode("utf-8", errors="replace").splitlines()]
    lines.append("")
    try:
        rows = runs.read_metrics(run_dir)
    except runs.RunDirError as exc:  # a damaged metrics file: say so and show the rest
        lines.append(f"last epoch: unreadable ({exc.line()})")
    else:
        if rows:
            lines.append(f"last epoch ({runs.METRICS}, {len(rows)} epoch(s))")
            lines += [f"  {key} {fmt(value)}" for key, value in rows[-1].items()]
        else:
            lines.append(f"last epoch: none recorded in {runs.METRICS}")
    plots = sorted((run_dir / runs.PLOTS).glob("*.png"))
    lines += ["", f"plots ({len(plots)})" if plots else f"plots: none (rnnlab plot {run} writes them)"]
    lines += [f"  {p}" for p in plots]
    tensorboard = run_dir / TENSORBOARD
    if tensorboard.is_dir():
        lines += ["", f"tensorboard --logdir {tensorboard}"]
    return lines


def replot(run: str | os.PathLike[str], device: str = "cpu", allow_foreign: bool = False) -> list[Path]:
    """Rebuild the run's task and best model from its files and redraw every plot, with the
    same code training uses."""
    from rnnlab.execution.lifecycle import write_plots
    from rnnlab.training.evaluation import load_run

    run_dir, exp, task, model, _ = load_run(run, "best", device, allow_foreign)
    history: list[dict[str, Any]] = runs.read_metrics(run_dir)
    if not history:
        raise runs.RunDirError(run_dir / runs.METRICS, "no epochs recorded, nothing to plot")
    return write_plots(exp, task, model, history, run_dir)
