"""``rnnlab diff RUN_A RUN_B``: what differs between two runs. Only the config keys whose values
differ (dotted paths, both values; the run name aside), then the metrics side by side (test, and
validation at the best epoch) with B - A. It only reads the two run directories."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rnnlab.analysis.compare import _read_config, _short_id, read_run
from rnnlab.rundir import files as runs

ABSENT = "(absent)"  # a key one config has and the other lacks (e.g. runs from two rnnlab versions)
SUMMARY_ROWS = ("status", "best_epoch", "epochs_completed", "train_seconds", "parameters")


@dataclass
class RunDiff:
    a: Path
    b: Path
    labels: tuple[str, str]  # the runs' directory names (with their parent's when they are equal)
    config: dict[str, tuple[Any, Any]]  # dotted key -> (value in A, value in B), differing keys only
    metrics: dict[str, tuple[Any, Any]]  # "test mse", "val mse", "status"... -> (A, B)
    metric: Optional[str]  # the task's own metric, e.g. "mse"

    def to_json(self) -> dict[str, Any]:
        return {"a": str(self.a), "b": str(self.b), "metric": self.metric,
                "config": {k: list(v) for k, v in self.config.items()},
                "metrics": {k: list(v) for k, v in self.metrics.items()}}


def diff_runs(a: str | Path, b: str | Path, runs_dir: Path) -> RunDiff:
    """The two runs, each a run directory or a run id in ``runs_dir``."""
    dir_a, dir_b = runs.find_run(a, runs_dir), runs.find_run(b, runs_dir)
    conf_a, conf_b = _read_config(dir_a), _read_config(dir_b)
    config = {k: (conf_a.get(k, ABSENT), conf_b.get(k, ABSENT))
              for k in dict.fromkeys([*conf_a, *conf_b])
              if k != "name" and repr(conf_a.get(k, ABSENT)) != repr(conf_b.get(k, ABSENT))}
    info_a, info_b = read_run(dir_a, dir_a), read_run(dir_b, dir_b)
    sa, sb = info_a.summary, info_b.summary
    metrics: dict[str, tuple[Any, Any]] = {}
    for split, field in (("test", "test"), ("val", "best_val")):
        va, vb = sa.get(field) or {}, sb.get(field) or {}
        for name in dict.fromkeys([*va, *vb]):
            metrics[f"{split} {name}"] = (va.get(name), vb.get(name))
    for key in SUMMARY_ROWS:
        metrics[key] = (sa.get(key), sb.get(key))
    metrics["status"] = tuple(i.status if not i.problem else f"unreadable ({i.problem})"  # type: ignore[assignment]
                              for i in (info_a, info_b))
    both = [dir_a, dir_b]
    return RunDiff(dir_a, dir_b, (_short_id(dir_a, both), _short_id(dir_b, both)), config, metrics,
                   sa.get("metric") or sb.get("metric"))


def _delta(a: Any, b: Any) -> Optional[float]:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return float(b - a) if numbers and math.isfinite(b - a) else None


def diff_tables(d: RunDiff, breakdowns: bool = False) -> list[Any]:
    """Two tables: the differing config keys, and the metrics (the task's own in bold; per-class
    breakdowns such as ``test accuracy/3`` only if asked)."""
    from rich.markup import escape
    from rich.table import Table

    from rnnlab.common.console import fmt

    def cell(v: Any) -> str:
        return "-" if v is None else escape(fmt(v))

    a, b = (escape(label) for label in d.labels)
    config = Table(title=f"config: {len(d.config)} key(s) differ (the run name aside)", title_justify="left")
    for name in ("key", f"A: {a}", f"B: {b}"):
        config.add_column(name, overflow="fold")
    for key, (va, vb) in d.config.items():
        config.add_row(escape(key), cell(va), cell(vb))
    if not d.config:
        config.add_row("(none: the configs are identical)", "", "")
    metrics = Table(title="metrics (test; val at the best epoch)", title_justify="left")
    for name in ("", f"A: {a}", f"B: {b}", "B - A"):
        metrics.add_column(name, justify="left" if not name else "right", overflow="fold")
    for row, (va, vb) in d.metrics.items():
        if "/" in row and not breakdowns:
            continue
        delta = _delta(va, vb)
        own = d.metric is not None and row in (f"test {d.metric}", f"val {d.metric}")
        metrics.add_row(row, cell(va), cell(vb), "" if delta is None else fmt(delta),
                        style="bold" if own else None)
    return [config, metrics]
