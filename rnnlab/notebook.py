"""How the Python API's objects look in a notebook: DataFrames (``Run.history_frame()``,
``SweepResult.trials_dataframe()``; pandas is the optional extra ``rnnlab[pandas]``), short
``repr`` texts and HTML tables (``_repr_html_``). Everything here only reads run and sweep files,
and a repr never raises: a run whose summary cannot be read says so instead."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

from rnnlab.errors import MissingExtra

if TYPE_CHECKING:
    import pandas

    from rnnlab.sweeps.results import TrialRecord

SHOWN_TRIALS = 10  # trials listed in a SweepResult's repr (the HTML table lists up to HTML_TRIALS)
HTML_TRIALS = 100


def require_pandas(where: str) -> Any:
    """The pandas module, or one line naming the extra that installs it."""
    try:
        import pandas
    except ImportError:
        raise MissingExtra(where, "needs pandas: pip install 'rnnlab[pandas]'") from None
    return pandas


def history_frame(rows: list[dict[str, Any]]) -> "pandas.DataFrame":
    """One row per epoch, indexed by epoch (``metrics.jsonl`` as a table)."""
    pd = require_pandas("history_frame")
    frame = pd.DataFrame(rows)
    return frame.set_index("epoch") if "epoch" in frame.columns else frame


def trials_frame(trials: Iterable["TrialRecord"]) -> "pandas.DataFrame":
    """One row per trial, best first: trial, rank, status, score, the swept values (one column per
    dotted key), ``val_<metric>`` at the best epoch, ``test_<metric>``, times, error and run path."""
    pd = require_pandas("trials_dataframe")
    rows = []
    for t in trials:
        row: dict[str, Any] = {"trial": t.trial, "rank": t.rank, "status": t.status, "score": t.score}
        row.update(t.values)
        row.update({f"val_{k}": v for k, v in t.val.items()})
        row.update({f"test_{k}": v for k, v in t.test.items()})
        row.update({"seconds": t.seconds, "train_seconds": t.train_seconds, "attempts": t.attempts,
                    "error": t.error, "run": t.run})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["trial", "rank", "status", "score"])


# ----------------------------------------------------------------------------- runs


def run_facts(path: Path) -> dict[str, Any]:
    """What a run's repr shows, read from its summary; an unreadable one gives its problem."""
    from rnnlab.analysis.compare import read_run
    from rnnlab.common.console import fmt

    info = read_run(path, path.parent)
    metric, value, split = info.key_metric()
    s = info.summary
    return {"id": path.name, "status": info.status, "problem": info.problem,
            "task": s.get("task", "?"), "model": s.get("model", "?"),
            "key": f"{split} {metric} {fmt(value)}" if value is not None else None,
            "best_epoch": s.get("best_epoch"), "epochs": s.get("epochs_completed"),
            "train_seconds": s.get("train_seconds"), "test": s.get("test") or {},
            "best_val": s.get("best_val") or {}}


def run_repr(path: Path) -> str:
    """``<Run ID: completed, sine/lstm, test mse 0.0342, path /abs/...>``."""
    f = run_facts(path)
    if f["problem"]:
        return f"<Run {f['id']}: unreadable ({f['problem']}), path {path}>"
    key = f", {f['key']}" if f["key"] else ""
    return f"<Run {f['id']}: {f['status']}, {f['task']}/{f['model']}{key}, path {path}>"


def _metrics(values: dict[str, Any]) -> str:
    from rnnlab.common.console import fmt

    return ", ".join(f"{k} {fmt(v)}" for k, v in values.items() if "/" not in k) or "-"


def run_html(path: Path) -> str:
    """A small table: status, task and model, the key metric, epochs, test and best-val metrics."""
    f = run_facts(path)
    rows: list[tuple[str, Any]] = [("status", f["status"] + (f" ({f['problem']})" if f["problem"] else ""))]
    if not f["problem"]:
        rows += [("task / model", f"{f['task']} / {f['model']}"), ("key metric", f["key"] or "-"),
                 ("epochs (best)", f"{f['epochs']} ({f['best_epoch']})"),
                 ("train seconds", f["train_seconds"]), ("test", _metrics(f["test"])),
                 ("best val", _metrics(f["best_val"]))]
    rows.append(("path", str(path)))
    return _table(f"Run {f['id']}", ["", ""], [[k, v] for k, v in rows], header=False)


# ----------------------------------------------------------------------------- sweeps


def _swept_keys(trials: list["TrialRecord"]) -> list[str]:
    return list(dict.fromkeys(k for t in trials for k in t.values))


def _trial_cells(t: "TrialRecord", keys: list[str]) -> list[str]:
    from rnnlab.common.console import fmt

    return ["-" if t.rank is None else str(t.rank), t.trial, t.status,
            "-" if t.score is None else fmt(t.score),
            *[fmt(t.values[k]) if k in t.values else "-" for k in keys]]


def _counts(trials: list["TrialRecord"]) -> str:
    by_status: dict[str, int] = {}
    for t in trials:
        by_status[t.status] = by_status.get(t.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in by_status.items())
    return f"{len(trials)} trial(s)" + (f" ({parts})" if parts else "")


def sweep_repr(path: Path, status: str, trials: list["TrialRecord"], best: Optional[Path]) -> str:
    """A few lines: status and counts, the path, the best run, then the first trials as a table."""
    keys = _swept_keys(trials)
    lines = [f"<SweepResult {path.name}: {status}, {_counts(trials)}", f"  path: {path}"]
    if best is not None:
        lines.append(f"  best: {best}")
    table = [["rank", "trial", "status", "score", *keys]]
    table += [_trial_cells(t, keys) for t in trials[:SHOWN_TRIALS]]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    if len(trials) > SHOWN_TRIALS:
        lines.append(f"  ... and {len(trials) - SHOWN_TRIALS} more (trials_dataframe() has them all)")
    return "\n".join(lines) + ">"


def sweep_html(path: Path, status: str, trials: list["TrialRecord"]) -> str:
    keys = _swept_keys(trials)
    rows = [[*_trial_cells(t, keys), Path(t.run).name if t.run else "-"] for t in trials[:HTML_TRIALS]]
    if len(trials) > HTML_TRIALS:
        rows.append(["", f"... and {len(trials) - HTML_TRIALS} more", *[""] * (len(keys) + 3)])
    title = (html.escape(f"SweepResult {path.name}: {status}, {_counts(trials)}")
             + f"<br><small>{html.escape(str(path))}</small>")
    return _table(title, ["rank", "trial", "status", "score", *keys, "run"], rows, escape_title=False)


def _table(title: str, columns: list[str], rows: list[list[Any]], header: bool = True,
           escape_title: bool = True) -> str:
    """An HTML table (every cell escaped) with a caption."""
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(str(c))}</th>" for c in columns) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{e(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    caption = e(title) if escape_title else title
    return f"<table><caption style='text-align:left'><b>{caption}</b></caption>{head}{body}</table>"
