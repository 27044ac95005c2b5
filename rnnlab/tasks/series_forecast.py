"""``rnnlab forecast``: the next ``horizon`` rows of a finished ``series`` run's targets after the
last ``lookback`` rows of a user's file, with the run's own columns, scaler and weights.

The file is read like the training data (same time column, columns, encoding and fill); its
frequency is inferred from its own timestamps (the run's when it has too few), and the forecast's
timestamps continue it. Values are in the data's units. A longer ``--horizon`` than the run was
trained for rolls forward (forecasts fed back as the next lookback rows), which needs the targets to
be all the inputs (in any order); a shorter one keeps the first steps. ``--horizon`` is at most
``MAX_ROLL`` times the run's horizon: each roll feeds forecasts back as inputs, so errors compound
and a longer forecast says nothing (and would only cost time), checked before any work.

Refused with one line (exit 2), before anything is written: a file whose frequency is not the
run's (a daily file forecast by an hourly run would have its days read as hours: the forecast would
be meaningless, so it is an error, not a warning), a forecast continuing past 9999-12-31, a window
that is not finite once scaled, and a forecast that is not finite (an input of ``1e308`` gives
``nan``): the line names the column and step. Outputs follow ``outputs.py`` (never the input file,
never inside a run, ``--force`` to replace a file; the plot beside the CSV is checked the same way).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

from rnnlab.common.outputs import check_outputs, with_companion, writing
from rnnlab.errors import DataError, RnnlabError, RunDirError
from rnnlab.rundir import files as runs
from rnnlab.tasks.series_calendars import CalendarError, Frequency
from rnnlab.tasks.series_files import Series, read_series

if TYPE_CHECKING:
    from rnnlab.models.base import Model

MAX_ROLL = 100  # --horizon: at most this many times the run's horizon


@dataclass
class Forecast:
    csv: Path
    plot: Path
    times: list[Any]  # datetimes, or row numbers without a time column
    values: np.ndarray  # (H, targets) in data units
    columns: list[str]


def _stamp(t: Any, dates_only: bool) -> str:
    if isinstance(t, datetime):
        return t.strftime("%Y-%m-%d") if dates_only else t.isoformat(sep=" ")
    return str(t)


def check_horizon(steps: int, trained: int) -> int:
    """``--horizon``: at least 1, at most ``MAX_ROLL`` times the run's horizon."""
    if steps < 1:
        raise RnnlabError("--horizon", f"must be at least 1, got {steps}")
    if steps > MAX_ROLL * trained:
        raise RnnlabError("--horizon", f"at most {MAX_ROLL * trained} ({MAX_ROLL} x the run's horizon of "
                          f"{trained}), got {steps}: past its horizon a forecast feeds its own "
                          "forecasts back as inputs, and errors compound")
    return steps


def future_times(series: Series, run_freq: Frequency, steps: int, file: Path
                 ) -> tuple[list[Any], bool, str]:
    """The forecast's timestamps continuing the file's (its row numbers without a time column),
    whether they are dates only, and the column's name."""
    n = len(series)
    if series.times is None:
        return list(range(n, n + steps)), False, "row"
    freq = series.freq if series.freq.known() else run_freq
    if not freq.known():
        raise DataError(file, "one row: cannot tell the frequency to continue")
    last = series.times[-1]
    try:
        times: list[Any] = [freq.add(last, k) for k in range(1, steps + 1)]
    except CalendarError as exc:
        raise DataError(file, f"{steps} steps after its last timestamp {last}: {exc.what}") from None
    recent = series.times[-min(n, 96):]
    dates_only = all(t.hour == t.minute == t.second == 0 for t in recent) and \
        bool(freq.months or (freq.seconds or 0) % 86400 == 0)
    return times, dates_only, ""


def check_frequency(series: Series, run_freq: Frequency, file: Path, run_dir: Path) -> None:
    """A file at another frequency than the run's is an error: the model's steps are the run's."""
    a, b = series.freq, run_freq
    if a.known() and b.known() and (a.seconds, a.months) != (b.seconds, b.months):
        raise DataError(file, f"its rows are {a.label()} apart, the run {run_dir.name} was trained on "
                        f"{b.label()} rows: the model would read each row as {b.label()}; give a file at "
                        "the run's frequency")


def scaled_window(task: Any, values: np.ndarray, n: int, file: Path) -> torch.Tensor:
    """The last lookback rows scaled by the run's scaler, refused if not finite once scaled."""
    lookback = task.options.lookback
    window = torch.from_numpy(task.scaler.transform(values[-lookback:])).float()  # the model's float32
    bad = torch.nonzero(~torch.isfinite(window))
    if len(bad):
        r, c = (int(i) for i in bad[0])
        raise DataError(file, f"row {n - lookback + r + 1}, column {task.inputs[c]!r}: "
                        f"{values[-lookback:][r, c]:g} is not finite once scaled by the run's scaler "
                        "(as the model's float32)")
    return window.unsqueeze(0)


def roll(task: Any, model: Any, window: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps, targets) scaled forecasts: the run's horizon at a time, fed back in input order."""
    lookback, chunks, done = window.shape[1], [], 0
    with torch.no_grad():
        while done < steps:
            pred = task.predict(model, window).float()  # (1, H, targets)
            chunks.append(pred)
            done += pred.shape[1]
            if done < steps:  # targets are all the inputs (checked): put them in input order
                fed = window.new_empty(1, pred.shape[1], window.shape[2])
                fed[:, :, task.target_idx] = pred
                window = torch.cat([window, fed], dim=1)[:, -lookback:]
    return torch.cat(chunks, dim=1)[0, :steps].double().cpu()


def check_finite(task: Any, future: np.ndarray, window_values: np.ndarray, file: Path) -> None:
    """A forecast that is not finite is an error naming the column and step."""
    bad = np.argwhere(~np.isfinite(future))
    if not len(bad):
        return
    r, c = bad[0]
    big = np.unravel_index(np.argmax(np.abs(window_values)), window_values.shape)
    raise DataError(file, f"the forecast of {task.targets[c]!r} is not finite ({future[r, c]} at step "
                    f"{r + 1}); the last {len(window_values)} rows are far from what the run was trained on "
                    f"(largest: {window_values[big]:g} in column {task.inputs[big[1]]!r})")


def write_csv(path: Path, head: str, targets: list[str], times: list[Any], future: np.ndarray,
              dates_only: bool) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([head, *targets])
    for t, row in zip(times, future):
        writer.writerow([_stamp(t, dates_only), *(f"{v:.10g}" for v in row)])
    with writing(path):
        runs.write_text(path, buf.getvalue())


def forecast_outputs(file: Path, horizon: Optional[int], out: Optional[Path], force: bool
                     ) -> tuple[Path, Path]:
    """The CSV and plot ``rnnlab forecast`` writes (the output-path rule), checked before any work."""
    if horizon is not None and horizon < 1:
        raise RnnlabError("--horizon", f"must be at least 1, got {horizon}")
    out = Path(out) if out is not None else Path("forecast.csv")
    out, plot_path = check_outputs(with_companion(out, ".png"), "--out", [Path(file)], force)
    return out, plot_path


def forecast(run_dir: Path, exp: Any, task: Any, model: "Model", file: Path, horizon: Optional[int],
             out: Path, plot_path: Path) -> Forecast:
    """``rnnlab forecast`` on a loaded series run: the next steps after ``file``'s last row."""
    from rnnlab.tasks.series_plots import forecast_plot

    if exp.task.name != "series":
        raise RunDirError(run_dir, f"forecast needs a series run; this run's task is '{exp.task.name}'")
    o = task.options
    steps = check_horizon(horizon or o.horizon, o.horizon)
    if steps > o.horizon and sorted(task.target_idx) != list(range(len(task.inputs))):
        raise RnnlabError("--horizon", f"the run forecasts {o.horizon} steps; rolling further feeds "
                          "forecasts back as inputs, which needs the targets to be all the inputs")
    series = read_series(Path(file), exp.data.encoding, task.time_column, task.inputs, exp.data.fill)
    if len(series) < o.lookback:
        raise DataError(file, f"{len(series)} rows after the header; the run reads the last "
                        f"{o.lookback} (its lookback)")
    check_frequency(series, task.freq, Path(file), run_dir)
    times, dates_only, head = future_times(series, task.freq, steps, Path(file))
    values = series.column(task.inputs)
    window = scaled_window(task, values, len(series), Path(file))
    model.eval()
    scaled = roll(task, model, window.to(next(model.parameters()).device), steps)
    future = task.to_units(scaled).numpy()
    check_finite(task, future, values[-o.lookback:], Path(file))
    write_csv(out, head or str(task.time_column), list(task.targets), times, future, dates_only)
    keep = min(len(series), max(4 * o.lookback, 2 * steps))
    hist_t = (series.times[-keep:] if series.times is not None
              else list(range(len(series) - keep, len(series))))
    with writing(plot_path):
        plot = forecast_plot(hist_t, values[-keep:][:, task.target_idx], times, future, task.targets,
                             plot_path, f"{Path(file).name}: {steps} steps ahead ({run_dir.name})")
    return Forecast(out, plot, times, future, list(task.targets))


__all__ = ["MAX_ROLL", "Forecast", "check_horizon", "forecast", "forecast_outputs"]
