"""``rnnlab forecast``: the next ``horizon`` rows of a finished ``series`` run's targets after the
last ``lookback`` rows of a user's file, with the run's own columns, scaler and weights.

The file is read like the training data (same time column, columns, encoding and fill); its
frequency is inferred from its own timestamps (the run's when it has too few), and the forecast's
timestamps continue it. Values are in the data's units. A longer ``--horizon`` than the run was
trained for rolls forward (forecasts fed back as the next lookback rows), which needs the targets to
be all the inputs; a shorter one keeps the first steps.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from . import runs
from .errors import DataError, RnnlabError, RunDirError
from .seriesfiles import Frequency, read_series


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


def forecast_run(run: str | os.PathLike[str], file: Path, horizon: Optional[int] = None,
                 out: Optional[Path] = None, checkpoint: str = "best", device: str = "cpu") -> Forecast:
    from .evaluation import load_run
    from .seriesplots import forecast_plot

    if horizon is not None and horizon < 1:
        raise RnnlabError("--horizon", f"must be at least 1, got {horizon}")
    out = Path(out) if out is not None else Path("forecast.csv")
    run_dir, exp, task, model, _ = load_run(run, checkpoint, device)
    if exp.task.name != "series":
        raise RunDirError(run_dir, f"forecast needs a series run; this run's task is '{exp.task.name}'")
    o = task.options
    steps = horizon or o.horizon
    if steps > o.horizon and task.target_idx != list(range(len(task.inputs))):
        raise RnnlabError("--horizon", f"the run forecasts {o.horizon} steps; rolling further feeds "
                          "forecasts back as inputs, which needs the targets to be all the inputs")
    series = read_series(Path(file), exp.data.encoding, task.time_column, task.inputs, exp.data.fill)
    if len(series) < o.lookback:
        raise DataError(file, f"{len(series)} rows after the header; the run reads the last "
                        f"{o.lookback} (its lookback)")
    values = series.column(task.inputs)
    window = torch.from_numpy(task.scaler.transform(values[-o.lookback:])).float().unsqueeze(0)
    window = window.to(next(model.parameters()).device)
    model.eval()
    chunks: list[torch.Tensor] = []
    with torch.no_grad():
        while sum(c.shape[1] for c in chunks) < steps:
            pred = task.predict(model, window).float()  # (1, H, targets), scaled
            chunks.append(pred)
            window = torch.cat([window, pred], dim=1)[:, -o.lookback:]
    scaled = torch.cat(chunks, dim=1)[0, :steps].double().cpu()
    future = task.to_units(scaled).numpy()
    freq = series.freq if series.freq.seconds or series.freq.months else task.freq
    if series.times is not None:
        if not (freq.seconds or freq.months):
            raise DataError(file, "one row: cannot tell the frequency to continue")
        times: list[Any] = [freq.add(series.times[-1], k) for k in range(1, steps + 1)]
        dates_only = all(t.hour == t.minute == t.second == 0 for t in series.times[-o.lookback:]) and \
            (freq.months or (freq.seconds or 0) % 86400 == 0)
        head = task.time_column
    else:
        times, dates_only, head = list(range(len(series), len(series) + steps)), False, "row"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([head, *task.targets])
    for t, row in zip(times, future):
        writer.writerow([_stamp(t, bool(dates_only)), *(f"{v:.10g}" for v in row)])
    runs.write_text(out, buf.getvalue())
    keep = min(len(series), max(4 * o.lookback, 2 * steps))
    hist_t = (series.times[-keep:] if series.times is not None
              else list(range(len(series) - keep, len(series))))
    plot = forecast_plot(hist_t, values[-keep:][:, task.target_idx], times, future, task.targets,
                         out.with_suffix(".png"), f"{Path(file).name}: {steps} steps ahead ({run_dir.name})")
    return Forecast(out, plot, times, future, list(task.targets))


__all__ = ["Forecast", "forecast_run", "Frequency"]
