"""What a sweep knows about its trials, and what it writes: ``summary.json`` (the sweep's state, read
back by ``--resume``), ``summary.csv`` (one row per trial, ranked), the ranked table and a plot
per swept parameter.

A sweep with ``repeats``/``seeds`` runs each configuration once per ``train.seed``; then the
trials of a configuration are grouped (``Group``): ``summary.csv`` and the table have one row per
configuration with n (completed trials), mean and sample standard deviation, ranked by the mean;
``summary.json`` lists the configurations beside the trials; the plots draw mean ± std bars."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from rnnlab.common.stats import mean_std
from rnnlab.errors import ConfigError, RunDirError
from rnnlab.rundir import files as runs
from rnnlab.sweeps.spec import SEED_KEY, Sweep, show

SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
FINISHED = ("completed", "failed", "diverged", "interrupted")


@dataclass
class TrialRecord:
    trial: str
    values: dict[str, Any]
    status: str = "pending"  # pending, running, then a run's final status (FINISHED)
    rank: Optional[int] = None
    score: Optional[float] = None  # the ranking metric
    val: dict[str, Any] = field(default_factory=dict)  # validation metrics at the best epoch
    test: dict[str, Any] = field(default_factory=dict)
    seconds: Optional[float] = None  # wall time of the trial's process, start to exit
    train_seconds: Optional[float] = None
    run: Optional[str] = None  # the trial's run directory (absolute)
    attempts: int = 0
    error: Optional[str] = None
    metric: Optional[str] = None  # the task's own metric and mode, as its run reported them
    mode: Optional[str] = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def adopt(self, summary: dict[str, Any]) -> None:
        """Take status and metrics from the trial's run ``summary.json``."""
        self.status = summary.get("status", "failed")
        self.val = summary.get("best_val") or {}
        self.test = summary.get("test") or {}
        self.train_seconds = summary.get("train_seconds")
        self.metric, self.mode = summary.get("metric"), summary.get("mode")
        self.error = None if self.status == "completed" else summary.get("error")


# ----------------------------------------------------------------------------- ranking


@dataclass
class Ranking:
    metric: Optional[str]
    mode: Optional[str]
    split: str
    source: str  # the sweep file, for errors

    @classmethod
    def of(cls, sweep: Sweep) -> Ranking:
        return cls(sweep.metric, sweep.mode, sweep.split, sweep.source)

    def resolve(self, records: list[TrialRecord]) -> None:
        """Without ``metric`` in the sweep file, rank by the task's own metric and mode."""
        if self.metric is None:
            first = next((r for r in records if r.status == "completed" and r.metric), None)
            if first is not None:
                self.metric, self.mode = first.metric, first.mode

    def check(self, record: TrialRecord) -> None:
        """A completed trial must report the ranking metric; fail fast on the first that does not."""
        self.resolve([record])
        metrics = record.val if self.split == "val" else record.test
        if record.status == "completed" and self.metric not in metrics:
            have = ", ".join(k for k in metrics if not k.startswith("targets"))
            raise ConfigError(self.source, f"metric: trial {record.trial} has no {self.split} metric "
                              f"{self.metric!r} (it has: {have}); set metric: and mode: to one of them")

    @property
    def label(self) -> str:
        return f"{self.split} {self.metric or 'metric'}"  # no metric yet: no trial has completed

    def apply(self, records: list[TrialRecord]) -> list[TrialRecord]:
        """Set score and rank (1 = best; ties keep trial order); return the records best first,
        then the unranked ones in trial order."""
        self.resolve(records)
        for r in records:
            metrics = r.val if self.split == "val" else r.test
            value = metrics.get(self.metric) if r.status == "completed" else None
            r.score = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
            r.rank = None
        sign = -1.0 if self.mode == "max" else 1.0
        ranked = sorted((r for r in records if r.score is not None), key=lambda r: sign * r.score)
        for rank, r in enumerate(ranked, 1):
            r.rank = rank
        return ranked + [r for r in records if r.rank is None]


# ----------------------------------------------------------------------------- repeats


@dataclass
class Group:
    """The trials of one configuration (the same swept values, one per seed)."""

    values: dict[str, Any]  # swept key -> value
    records: list[TrialRecord]
    rank: Optional[int] = None

    @property
    def scores(self) -> list[float]:
        return [r.score for r in self.records if r.score is not None]

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> Optional[float]:
        return mean_std(self.scores)[0]

    @property
    def std(self) -> Optional[float]:
        return mean_std(self.scores)[1]

    def stats(self, split: str, metric: str) -> tuple[Optional[float], Optional[float], int]:
        """Mean, std and n of one metric over the completed trials."""
        values = [float(v) for r in self.records if r.status == "completed"
                  for v in [(r.val if split == "val" else r.test).get(metric)]
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        return (*mean_std(values), len(values))

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "values": self.values, "n": self.n, "mean": self.mean, "std": self.std,
                "seeds": [r.values.get(SEED_KEY) for r in self.records],
                "trials": [r.trial for r in self.records]}


def repeated(records: list[TrialRecord], keys: list[str]) -> bool:
    """Whether the trials are repeats over seeds (``train.seed`` set per trial, not swept)."""
    return SEED_KEY not in keys and any(SEED_KEY in r.values for r in records)


def grouped(records: list[TrialRecord], keys: list[str], ranking: Ranking) -> list[Group]:
    """Configurations ranked by their mean score (ties keep trial order), then the unscored ones.
    Call after ``ranking.apply`` has scored the records."""
    groups: dict[str, Group] = {}
    for r in records:
        values = {k: r.values.get(k) for k in keys}
        key = json.dumps(values, sort_keys=True, default=repr)
        groups.setdefault(key, Group(values, [])).records.append(r)
    sign = -1.0 if ranking.mode == "max" else 1.0
    ranked = sorted((g for g in groups.values() if g.n), key=lambda g: sign * g.mean)  # type: ignore[operator]
    for rank, g in enumerate(ranked, 1):
        g.rank = rank
    return ranked + [g for g in groups.values() if not g.n]


def pm(mean: Optional[float], std: Optional[float]) -> str:
    from rnnlab.common.console import fmt

    if mean is None:
        return "-"
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)}"


def groups_csv(groups: list[Group], keys: list[str], records: list[TrialRecord]) -> str:
    """One row per configuration, best mean first: rank, swept values, n (completed trials), then
    mean and std of every validation and test metric and of the seconds, seeds, trial ids."""
    val_keys = list(dict.fromkeys(k for r in records for k in r.val))
    test_keys = list(dict.fromkeys(k for r in records for k in r.test))
    header = ["rank", *keys, "n", "trials", "statuses"]
    for split, names in (("val", val_keys), ("test", test_keys)):
        header += [f"{split}_{k}_{stat}" for k in names for stat in ("mean", "std")]
    header += ["seconds_mean", "seeds", "trial_ids"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for g in groups:
        row = [g.rank, *(g.values.get(k) for k in keys), g.n, len(g.records),
               " ".join(f"{n} {status}" for status, n in counts(g.records).items())]
        for split, names in (("val", val_keys), ("test", test_keys)):
            for name in names:
                row += list(g.stats(split, name)[:2])
        seconds = [r.seconds for r in g.records if r.seconds is not None]
        row += [round(statistics.fmean(seconds), 2) if seconds else None,
                " ".join(str(r.values.get(SEED_KEY)) for r in g.records),
                " ".join(r.trial for r in g.records)]
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue()


# ----------------------------------------------------------------------------- files


def read_records(sweep_dir: Path) -> tuple[dict[str, Any], list[TrialRecord]]:
    path = sweep_dir / SUMMARY_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data, [TrialRecord.from_dict(t) for t in data["trials"]]
    except FileNotFoundError:
        raise RunDirError(path, "missing: not a sweep directory, or the sweep never started") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise RunDirError(path, "corrupted: not a sweep summary (a JSON object with 'trials')") from None


def write_summaries(sweep_dir: Path, meta: dict[str, Any], records: list[TrialRecord],
                    keys: list[str], ranking: Ranking) -> list[TrialRecord]:
    ordered = ranking.apply(records)
    best = ordered[0] if ordered and ordered[0].rank == 1 else None
    summary = {**meta, "metric": ranking.metric, "mode": ranking.mode, "split": ranking.split,
               "keys": keys, "counts": counts(records),
               "best": None if best is None else {"trial": best.trial, "score": best.score, "run": best.run},
               "trials": [asdict(r) for r in records]}
    if repeated(records, keys):
        groups = grouped(records, keys, ranking)
        summary["configurations"] = [g.to_json() for g in groups]
        runs.write_json(sweep_dir / SUMMARY_JSON, summary)
        runs.write_text(sweep_dir / SUMMARY_CSV, groups_csv(groups, keys, records))
        return ordered
    runs.write_json(sweep_dir / SUMMARY_JSON, summary)
    runs.write_text(sweep_dir / SUMMARY_CSV, to_csv(ordered, keys))
    return ordered


def counts(records: list[TrialRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def to_csv(ordered: list[TrialRecord], keys: list[str]) -> str:
    """One row per trial, best first: rank, trial, swept values, status, every validation and test
    metric, seconds, run path, error."""
    val_keys = list(dict.fromkeys(k for r in ordered for k in r.val))
    test_keys = list(dict.fromkeys(k for r in ordered for k in r.test))
    header = ["rank", "trial", *keys, "status", *(f"val_{k}" for k in val_keys),
              *(f"test_{k}" for k in test_keys), "seconds", "train_seconds", "attempts", "run", "error"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in ordered:
        writer.writerow([_cell(v) for v in (
            r.rank, r.trial, *(r.values.get(k) for k in keys), r.status,
            *(r.val.get(k) for k in val_keys), *(r.test.get(k) for k in test_keys),
            None if r.seconds is None else round(r.seconds, 2), r.train_seconds, r.attempts, r.run,
            r.error)])
    return buf.getvalue()


# ----------------------------------------------------------------------------- display


def ranked_table(ordered: list[TrialRecord], keys: list[str], ranking: Ranking, title: str) -> Any:
    from rich.table import Table

    from rnnlab.common.console import fmt

    if repeated(ordered, keys):
        return groups_table(grouped(ordered, keys, ranking), keys, ranking, title)
    table = Table(title=title, title_justify="left")
    for name in ("rank", "trial", *keys, "status", ranking.label):
        table.add_column(name, justify="right" if name in ("rank", ranking.label) else "left")
    show_test = ranking.split == "val"
    if show_test:
        table.add_column(f"test {ranking.metric or 'metric'}", justify="right")
    table.add_column("seconds", justify="right")
    errors = any(r.error for r in ordered)
    if errors:
        table.add_column("error", overflow="fold", max_width=60)
    for r in ordered:
        row = [str(r.rank or "-"), r.trial, *(show(r.values.get(k)) for k in keys), r.status,
               fmt(r.score) if r.score is not None else "-"]
        if show_test:
            value = r.test.get(ranking.metric) if r.status == "completed" else None
            row.append(fmt(value) if value is not None else "-")
        row.append(f"{r.seconds:.1f}" if r.seconds is not None else "-")
        if errors:
            row.append(r.error or "")
        table.add_row(*row, style="bold" if r.rank == 1 else None)
    return table


def groups_table(groups: list[Group], keys: list[str], ranking: Ranking, title: str) -> Any:
    """One row per configuration: n, mean ± std of the ranking metric (and of test), mean seconds."""
    from rich.table import Table

    table = Table(title=f"{title}; mean ± std over seeds", title_justify="left")
    for name in ("rank", *keys, "n", f"{ranking.label} (mean ± std)"):
        table.add_column(name, justify="left" if name in keys else "right")
    show_test = ranking.split == "val"
    if show_test:
        table.add_column(f"test {ranking.metric or 'metric'} (mean ± std)", justify="right")
    table.add_column("seconds", justify="right")
    for g in groups:
        row = [str(g.rank or "-"), *(show(g.values.get(k)) for k in keys), f"{g.n}/{len(g.records)}",
               pm(g.mean, g.std)]
        if show_test and ranking.metric:
            row.append(pm(*g.stats("test", ranking.metric)[:2]))
        elif show_test:
            row.append("-")
        seconds = [r.seconds for r in g.records if r.seconds is not None]
        row.append(f"{statistics.fmean(seconds):.1f}" if seconds else "-")
        table.add_row(*row, style="bold" if g.rank == 1 else None)
    return table


def write_plots(sweep: Sweep, records: list[TrialRecord], plots_dir: Path, ranking: Ranking) -> list[Path]:
    """One figure per swept key: the ranking metric of every completed trial against the key's
    value, with the best value per setting joined up where a setting was tried more than once;
    with repeats, each configuration's mean ± std as an error bar."""
    scored = [r for r in records if r.score is not None]
    if not scored:
        return []
    from rnnlab.sweeps.plots import sweep_param_plot

    groups = grouped(records, sweep.keys, ranking) if repeated(records, sweep.keys) else None
    paths = []
    for key in sweep.keys:
        log_x = key in sweep.random and sweep.random[key].log_scale
        points = [(r.values.get(key), r.score) for r in scored]
        bars = None if groups is None else [(g.values.get(key), g.mean, g.std or 0.0)
                                            for g in groups if g.mean is not None]
        paths.append(sweep_param_plot(points, key, ranking.label, ranking.mode or "min",
                                      plots_dir / f"{runs.safe_name(key)}.png", log_x, bars))
    return paths
