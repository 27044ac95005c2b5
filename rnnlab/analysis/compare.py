"""Looking across runs: ``rnnlab runs`` (a table of run directories, newest first, filterable) and
``rnnlab compare`` (config differences and metrics side by side; or two groups of runs, e.g. seeds
of two configs, as mean(A) - mean(B) with a 95 % Welch t interval). All only read run directories."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rnnlab.common.stats import Difference, mean_std, welch_interval
from rnnlab.config.loading import read_yaml
from rnnlab.config.schema import flatten
from rnnlab.errors import ConfigError, RnnlabError, RunDirError
from rnnlab.rundir import files as runs

MAX_DEPTH = 3  # runs/<run>, runs/<sweep>/<run>, and one level more for folders of sweeps
SKIP = {runs.CHECKPOINTS, runs.PLOTS, "logs", "trials", "tensorboard"}


@dataclass
class RunInfo:
    path: Path
    id: str  # the path relative to the listed folder
    summary: dict[str, Any]
    problem: Optional[str] = None  # why the summary could not be read

    @property
    def status(self) -> str:
        return self.summary.get("status", "unreadable" if self.problem else "unknown")

    @property
    def started(self) -> str:
        return str(self.summary.get("started") or "")

    def key_metric(self) -> tuple[Optional[str], Optional[float], str]:
        """(metric, value, split): the task's metric on test, or at the best validation epoch."""
        metric = self.summary.get("metric")
        for split, values in (("test", self.summary.get("test")), ("val", self.summary.get("best_val"))):
            if metric and isinstance(values, dict) and isinstance(values.get(metric), (int, float)):
                return metric, float(values[metric]), split
        return metric, None, ""


def find_runs(root: Path) -> list[Path]:
    """Run directories (those with a config.yaml) under ``root``, sweeps' trial runs included."""
    if (root / runs.CONFIG).is_file():
        return [root]
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in SKIP)
        except OSError:
            return
        for child in children:
            if (child / runs.CONFIG).is_file():
                found.append(child)
            elif depth < MAX_DEPTH:
                walk(child, depth + 1)

    walk(root, 1)
    return found


def read_run(path: Path, root: Path) -> RunInfo:
    rel = str(path.relative_to(root)) if path != root else path.name
    try:
        return RunInfo(path, rel, runs.read_summary(path))
    except RnnlabError as exc:  # one broken run must not hide the others
        return RunInfo(path, rel, {}, exc.what)


def list_runs(root: Path, task: Optional[str] = None, model: Optional[str] = None,
              status: Optional[str] = None) -> list[RunInfo]:
    """Runs under ``root``, newest first, keeping those matching every filter given."""
    if not root.exists():
        raise RunDirError(root, "runs directory not found")
    if not root.is_dir():
        raise RunDirError(root, "not a directory")
    infos = [read_run(p, root) for p in find_runs(root)]
    keep = [i for i in infos
            if (task is None or i.summary.get("task") == task)
            and (model is None or i.summary.get("model") == model)
            and (status is None or i.status == status)]
    # ISO timestamps sort as text; runs without one (unreadable) by their directory name
    return sorted(keep, key=lambda i: (i.started or i.path.name[:15], i.path.name), reverse=True)


RUN_COLUMNS = (("id", "left"), ("task", "left"), ("model", "left"), ("status", "left"),
               ("metric", "right"), ("train s", "right"), ("started (UTC)", "left"))


def run_cells(info: RunInfo) -> list[str]:
    """The row of ``rnnlab runs`` for one run, as plain text, one cell per ``RUN_COLUMNS``."""
    from rnnlab.common.console import fmt

    s = info.summary
    metric, value, split = info.key_metric()
    seconds = s.get("train_seconds")
    return [info.id, str(s.get("task", "-")), str(s.get("model", "-")),
            info.status if not info.problem else f"{info.status} ({info.problem})",
            f"{split} {metric} {fmt(value)}" if value is not None else "-",
            f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "-",
            info.started.replace("T", " ")[:19] or "-"]


def runs_table(infos: list[RunInfo], title: str) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    for name, justify in RUN_COLUMNS:
        table.add_column(name, justify=justify, no_wrap=name == "id")  # type: ignore[arg-type]
    for info in infos:
        table.add_row(*(escape(cell) for cell in run_cells(info)))
    return table


# ----------------------------------------------------------------------------- compare




def expand_args(paths: list[Path]) -> list[Path]:
    """Each argument is a run directory, or a folder of runs (a sweep directory) standing for
    every run in it."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir() and not (path / runs.CONFIG).is_file():
            found = find_runs(path)
            if not found:
                raise RunDirError(path, f"neither a run directory ({runs.CONFIG} is missing) nor a "
                                  "folder of runs")
            out.extend(found)
        else:
            out.append(runs.resolve_run(path))
    return out


@dataclass
class Comparison:
    ids: list[str]
    differences: dict[str, list[Any]]  # dotted config key -> value per run (only keys that differ)
    metrics: dict[str, list[Any]]  # row name -> value per run
    best: dict[str, int]  # metric row -> index of the best run on it

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.ids, "differences": self.differences, "metrics": self.metrics,
                "best": {row: self.ids[i] for row, i in self.best.items()}}


SUMMARY_ROWS = ("status", "best_epoch", "epochs_completed", "train_seconds", "parameters", "threads",
                "device")


def compare_runs(paths: list[Path]) -> Comparison:
    dirs = expand_args(paths)
    if len(dirs) < 2:
        raise RunDirError(paths[0] if paths else "compare", "give at least two runs to compare")
    configs = [_read_config(d) for d in dirs]
    infos = [read_run(d, d) for d in dirs]
    summaries = [i.summary for i in infos]
    keys = list(dict.fromkeys(k for c in configs for k in c if k != "name"))
    missing = object()
    differences = {k: [c.get(k) for c in configs] for k in keys
                   if len({repr(c.get(k, missing)) for c in configs}) > 1}
    metrics: dict[str, list[Any]] = {}
    best: dict[str, int] = {}
    for split, field in (("test", "test"), ("val", "best_val")):
        names = list(dict.fromkeys(k for s in summaries for k in (s.get(field) or {})))
        for name in names:
            row = f"{split} {name}"
            metrics[row] = [(s.get(field) or {}).get(name) for s in summaries]
            index = _best(metrics[row], name, summaries)
            if index is not None:
                best[row] = index
    for key in SUMMARY_ROWS:
        metrics[key] = [s.get(key) for s in summaries]
    metrics["status"] = [i.status if not i.problem else f"unreadable ({i.problem})" for i in infos]
    ids = [_short_id(d, dirs) for d in dirs]
    return Comparison(ids, differences, metrics, best)


def _read_config(run_dir: Path) -> dict[str, Any]:
    """A run's flattened config; an unreadable one is shown as such (the others still compare)."""
    try:
        return flatten(read_yaml(run_dir / runs.CONFIG))
    except RnnlabError as exc:
        return {"config": f"unreadable ({exc.what})"}


def _best(values: list[Any], metric: str, summaries: list[dict[str, Any]]) -> Optional[int]:
    """The best run on the task's own metric (its mode says which way is better)."""
    modes = {s.get("mode") for s in summaries if s.get("metric") == metric}
    if len(modes) != 1 or None in modes:
        return None
    scored = [(v, i) for i, v in enumerate(values) if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(scored) < 2:
        return None
    pick = min if modes == {"min"} else max
    return pick(scored)[1]


def _short_id(path: Path, all_paths: list[Path]) -> str:
    """The run directory's name, with its parent's when two share a name."""
    names = [p.name for p in all_paths]
    return path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}"


def comparison_tables(comp: Comparison) -> list[Any]:
    from rich.markup import escape
    from rich.table import Table

    from rnnlab.common.console import fmt

    tables = []
    for title, rows, best in (("config differences", comp.differences, {}),
                              ("metrics (bold: best on the task's metric)", comp.metrics, comp.best)):
        table = Table(title=title, title_justify="left")
        table.add_column("")
        for run_id in comp.ids:
            table.add_column(run_id, overflow="fold")
        for key, values in rows.items():
            cells = ["-" if v is None else escape(fmt(v)) for v in values]
            if key in best:
                cells[best[key]] = f"[bold]{cells[best[key]]}[/bold]"
            table.add_row(key, *cells)
        if not rows:
            table.add_row("(none: the configs are identical)" if title.startswith("config") else "(none)",
                          *[""] * len(comp.ids))
        tables.append(table)
    return tables


# ----------------------------------------------------------------------------- two groups of runs


@dataclass
class GroupComparison:
    """Two groups of runs (e.g. one config over several seeds each): per metric, each group's
    mean ± std and n, and mean(A) - mean(B) with a 95 % Welch t interval."""

    a: list[str]
    b: list[str]
    labels: tuple[str, str]
    rows: dict[str, Optional[Difference]]  # metric row -> difference (None: a group has < 2 values)
    values: dict[str, tuple[list[float], list[float]]]  # metric row -> the values of each group
    task_metric: Optional[str]  # the row of the task's own metric, e.g. "test accuracy"
    mode: Optional[str]
    skipped: list[str]  # runs left out: not completed

    def verdict(self, row: str) -> str:
        d = self.rows.get(row)
        if d is None:
            return "needs >= 2 completed runs per group"
        if not d.excludes_zero:
            return "no difference shown (interval contains 0)"
        higher = self.labels[0] if d.diff > 0 else self.labels[1]
        if row == self.task_metric and self.mode:
            better = higher if self.mode == "max" else (self.labels[1] if d.diff > 0 else self.labels[0])
            return f"{better} better"
        return f"{higher} higher"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for row, (va, vb) in self.values.items():
            d = self.rows[row]
            (ma, sa), (mb, sb) = mean_std(va), mean_std(vb)
            out[row] = {"a": {"n": len(va), "mean": ma, "std": sa},
                        "b": {"n": len(vb), "mean": mb, "std": sb},
                        "difference": None if d is None else d.diff,
                        "interval": None if d is None else [d.low, d.high],
                        "df": None if d is None else d.df, "verdict": self.verdict(row)}
        return {"method": "Welch t interval, 95 %, for mean(A) - mean(B)",
                "groups": {"a": self.a, "b": self.b},
                "labels": list(self.labels), "task_metric": self.task_metric, "mode": self.mode,
                "skipped": self.skipped, "metrics": out}


def split_by(paths: list[Path], spec: str) -> tuple[list[Path], list[Path], tuple[str, str]]:
    """``--by KEY=A,B``: the runs whose config has KEY == A, and those with KEY == B."""
    key, sep, choices = spec.partition("=")
    values = [v.strip() for v in choices.split(",")] if sep else []
    if not key.strip() or len(values) != 2 or not all(values):
        raise ConfigError("--by", f"expected KEY=A,B (e.g. model.name=lstm,gru), got {spec!r}")
    dirs = expand_args(paths)
    found: dict[str, list[Path]] = {}
    for d in dirs:
        value = flatten(read_yaml(d / runs.CONFIG)).get(key.strip(), object())
        found.setdefault(_as_text(value), []).append(d)
    groups = [found.get(v, []) for v in values]
    for value, group in zip(values, groups):
        if not group:
            seen = ", ".join(sorted(v for v in found if not v.startswith("<object"))) or "none"
            raise ConfigError("--by", f"no run has {key.strip()}={value} (values found: {seen})")
    return groups[0], groups[1], (f"{key.strip()}={values[0]}", f"{key.strip()}={values[1]}")


def _as_text(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def compare_groups(a: list[Path], b: list[Path], labels: tuple[str, str] = ("A", "B")) -> GroupComparison:
    """Each path is a run directory or a folder of runs; runs not completed are left out."""
    dirs_a, dirs_b = expand_args(a), expand_args(b)
    both = set(dirs_a) & set(dirs_b)
    if both:
        raise RunDirError(min(both), "is in both groups")
    skipped: list[str] = []

    def completed(dirs: list[Path]) -> list[dict[str, Any]]:
        out = []
        for d in dirs:
            summary = read_run(d, d).summary
            if summary.get("status") == "completed":
                out.append(summary)
            else:
                skipped.append(f"{d} ({summary.get('status', 'unreadable')})")
        return out

    sa, sb = completed(dirs_a), completed(dirs_b)
    if not sa or not sb:
        raise RunDirError(a[0] if not sa else b[0], "this group has no completed run")
    values: dict[str, tuple[list[float], list[float]]] = {}
    for split, field in (("test", "test"), ("val", "best_val")):
        names = list(dict.fromkeys(k for s in sa + sb for k in (s.get(field) or {})))
        for name in names:
            va, vb = (_numbers(group, field, name) for group in (sa, sb))
            if va and vb:
                values[f"{split} {name}"] = (va, vb)
    metric = next((s.get("metric") for s in sa + sb if s.get("metric")), None)
    modes = {s.get("mode") for s in sa + sb if s.get("metric") == metric}
    task_row = next((row for row in (f"test {metric}", f"val {metric}") if row in values), None)
    rows = {row: welch_interval(va, vb) for row, (va, vb) in values.items()}
    return GroupComparison([str(d) for d in dirs_a], [str(d) for d in dirs_b], labels, rows, values,
                           task_row, modes.pop() if len(modes) == 1 else None, skipped)


def _numbers(summaries: list[dict[str, Any]], field: str, name: str) -> list[float]:
    vals = [(s.get(field) or {}).get(name) for s in summaries]
    return [float(v) for v in vals
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def group_table(comp: GroupComparison, breakdowns: bool = False) -> Any:
    """The table; per-class breakdowns (metric names with a '/', e.g. accuracy/3) only if asked."""
    from rich.table import Table

    from rnnlab.common.console import fmt

    a, b = comp.labels
    table = Table(title=f"{a} ({len(comp.a)} runs) vs {b} ({len(comp.b)} runs): difference of means "
                  "mean(A) - mean(B) with a 95 % Welch t interval (bold: the task's metric)",
                  title_justify="left")
    for name in ("metric", f"A: {a}", f"B: {b}", "A - B", "95 % interval", "verdict"):
        table.add_column(name, justify="left" if name in ("metric", "verdict") else "right")
    for row, (va, vb) in comp.values.items():
        if "/" in row and not breakdowns:
            continue
        d = comp.rows[row]
        cells = [row, _pm(va), _pm(vb), fmt(mean_std(va)[0] - mean_std(vb)[0]),  # type: ignore[operator]
                 "-" if d is None else f"[{fmt(d.low)}, {fmt(d.high)}]", comp.verdict(row)]
        table.add_row(*cells, style="bold" if row == comp.task_metric else None)
    return table


def _pm(values: list[float]) -> str:
    from rnnlab.common.console import fmt

    mean, std = mean_std(values)
    spread = f" ± {fmt(std)}" if std is not None else ""
    return f"{fmt(mean)}{spread} (n={len(values)})"
