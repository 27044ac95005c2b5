"""Reading a time series from a CSV/TSV file, its frequency, gaps and fills, and the scaler.

- The first line is a header naming the columns (``#`` comment lines above it are skipped).
  ``time_column`` (optional) holds ISO-8601 dates or date-times (``2016-07-01 00:00:00``,
  ``2016-07-01``, ``1958-03``); without it the rows are steps.
- A column is numeric when its first non-missing cell is a number. Missing cells are empty or one of
  ``NA``, ``NaN``, ``nan``, ``null``, ``None``.
- The frequency is the most common step between timestamps; calendar series (monthly, quarterly,
  yearly, on one day of the month or on month ends) step by months (``calendars.py``).
- Problems are one line naming the file, the row (1-based, after the header; the file line is
  given too) and the column: a missing or non-numeric cell, a timestamp that does not parse, goes
  backwards or repeats, and a gap (a step longer than the frequency). ``fill: ffill`` carries the
  last value forward into missing cells and gap rows; ``fill: interpolate`` draws a straight line
  between the values either side (the ends are carried). Non-numeric cells and unsorted or
  duplicated timestamps are errors with any fill.

The scaler (``standard``: (v - mean) / std with the population std, as scikit-learn's
StandardScaler; ``minmax``: (v - min) / (max - min); ``none``) is fitted on the training rows only
and saved as plain JSON in the run.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np

from rnnlab.errors import DataError, RunDirError
from rnnlab.tasks.series_calendars import Frequency, beyond_range, infer_frequency, parse_time
from rnnlab.tasks.text_files import decode, detect_format

MISSING = {"", "na", "nan", "null", "none", "n/a"}
Fill = Literal["none", "ffill", "interpolate"]


# ----------------------------------------------------------------------------- the table


@dataclass
class Series:
    """Rows of numeric columns in time order (after gaps and fills), with their timestamps."""

    path: Path
    columns: list[str]
    values: np.ndarray  # (N, C) float64
    times: Optional[list[datetime]]
    freq: Frequency
    filled: int = 0  # cells filled (missing + gap rows)
    gap_rows: int = 0

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def column(self, names: Sequence[str]) -> np.ndarray:
        return self.values[:, [self.columns.index(n) for n in names]]


def _number(cell: str) -> Optional[float]:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value


def read_series(path: Path, encoding: str = "utf-8", time_column: Optional[str] = None,
                columns: Optional[Sequence[str]] = None, fill: Fill = "none",
                where: str = "data.path") -> Series:
    """The numeric ``columns`` (default: every numeric column) of a CSV/TSV file."""
    text = decode(path, encoding)
    fmt = detect_format(path, text, "auto")
    reader = csv.reader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ",")
    records = [(n, cells) for n, cells in enumerate(reader, 1) if any(c.strip() for c in cells)]
    while records and records[0][1][0].lstrip().startswith("#"):  # comment lines above the header
        records.pop(0)
    if not records:
        raise DataError(path, "empty file (expected a header line and rows)")
    header = [c.strip() for c in records[0][1]]
    rows = records[1:]
    if not rows:
        raise DataError(path, "no rows after the header")
    for n, cells in rows:
        if len(cells) != len(header):
            raise DataError(path, f"line {n}: {len(cells)} cells, the header has {len(header)}")
    if time_column is not None and time_column not in header:
        raise DataError(path, f"data.time_column: no column {time_column!r}; columns: {', '.join(header)}")
    candidates = [h for h in header if h != time_column]
    if columns is None:
        columns = [h for h in candidates if _is_numeric(rows, header.index(h))]
        if not columns:
            raise DataError(path, "no numeric column to read")
    for name in columns:
        if name not in candidates:
            raise DataError(path, f"no column {name!r}; columns: {', '.join(candidates)}")
    idx = [header.index(c) for c in columns]
    values = np.full((len(rows), len(idx)), np.nan)
    missing: list[tuple[int, int]] = []
    for r, (n, cells) in enumerate(rows):
        for c, i in enumerate(idx):
            cell = cells[i].strip()
            if cell.lower() in MISSING:
                missing.append((r, c))
                continue
            value = _number(cell)
            if value is None or not np.isfinite(value):
                raise DataError(path, f"row {r + 1} (line {n}), column {columns[c]!r}: "
                                f"not a number: {cell[:40]!r}")
            values[r, c] = value
    if missing and fill == "none":
        r, c = missing[0]
        raise DataError(path, f"row {r + 1} (line {rows[r][0]}), column {columns[c]!r}: missing value "
                        f"({len(missing)} in all; set data.fill: ffill or interpolate)")
    times, freq, gap_rows = None, Frequency(seconds=None), 0
    if time_column is not None:
        times = _timestamps(path, rows, header.index(time_column), time_column)
        freq = infer_frequency(times)
        values, times, gap_rows = _regularise(path, rows, values, times, freq, fill, time_column)
    filled = int(np.isnan(values).sum())
    if filled:
        values = _fill(values, fill, path, columns)
    return Series(path, list(columns), values, times, freq, filled, gap_rows)


def _is_numeric(rows: list[tuple[int, list[str]]], i: int) -> bool:
    for _, cells in rows:
        cell = cells[i].strip()
        if cell.lower() not in MISSING:
            return _number(cell) is not None
    return False


def _timestamps(path: Path, rows: list[tuple[int, list[str]]], i: int, name: str) -> list[datetime]:
    times: list[datetime] = []
    for r, (n, cells) in enumerate(rows):
        t = parse_time(cells[i])
        if t is None and beyond_range(cells[i]):
            raise DataError(path, f"row {r + 1} (line {n}), column {name!r}: {cells[i].strip()[:40]!r} is "
                            "past 9999-12-31, the last date rnnlab can represent")
        if t is None:
            raise DataError(path, f"row {r + 1} (line {n}), column {name!r}: not a date/time: "
                            f"{cells[i].strip()[:40]!r} (expected ISO 8601, e.g. 2016-07-01 00:00:00)")
        if times and t.tzinfo != times[-1].tzinfo:
            raise DataError(path, f"row {r + 1} (line {n}), column {name!r}: mixes time zones")
        if times and t <= times[-1]:
            what = ("duplicated timestamp" if t == times[-1]
                    else f"timestamp goes backwards (after {times[-1]})")
            raise DataError(path, f"row {r + 1} (line {n}), column {name!r}: {what}: {cells[i].strip()}"
                            " (rows must be in time order)")
        times.append(t)
    return times


def _regularise(path: Path, rows: list[tuple[int, list[str]]], values: np.ndarray,
                times: list[datetime], freq: Frequency, fill: Fill, name: str
                ) -> tuple[np.ndarray, list[datetime], int]:
    """Insert empty rows for gaps (with a fill) or raise at the first one."""
    if freq.seconds is None and not freq.months:
        return values, times, 0
    out_v, out_t, gaps = [values[0]], [times[0]], 0
    for r in range(1, len(times)):
        k = freq.steps_between(times[r - 1], times[r])
        if k is None:
            raise DataError(path, f"row {r + 1} (line {rows[r][0]}), column {name!r}: {times[r]} is off "
                            f"the series' {freq.label()} grid (after {times[r - 1]})")
        if k > 1:
            if fill == "none":
                raise DataError(path, f"row {r + 1} (line {rows[r][0]}), column {name!r}: gap of {k - 1} "
                                f"missing {freq.label()} step(s) after {times[r - 1]} "
                                "(set data.fill: ffill or interpolate)")
            for j in range(1, k):
                out_v.append(np.full(values.shape[1], np.nan))
                out_t.append(freq.add(times[r - 1], j))
            gaps += k - 1
        out_v.append(values[r])
        out_t.append(times[r])
    return np.stack(out_v), out_t, gaps


def _fill(values: np.ndarray, fill: Fill, path: Path, columns: Sequence[str]) -> np.ndarray:
    values = values.copy()
    rows = np.arange(len(values))
    for c in range(values.shape[1]):
        col = values[:, c]
        known = ~np.isnan(col)
        if not known.any():
            raise DataError(path, f"column {columns[c]!r}: no values at all")
        if fill == "ffill":
            if not known[0]:
                raise DataError(path, f"row 1, column {columns[c]!r}: missing, and ffill has nothing "
                                "before it to carry (use data.fill: interpolate)")
            last = np.maximum.accumulate(np.where(known, rows, 0))
            values[:, c] = col[last]
        else:  # linear between neighbours, the ends carried
            values[:, c] = np.interp(rows, rows[known], col[known])
    return values


# ----------------------------------------------------------------------------- scaling


class Scaler:
    """Per-column affine scaling fitted on the training rows."""

    def __init__(self, kind: str, shift: np.ndarray, scale: np.ndarray) -> None:
        self.kind, self.shift, self.scale = kind, shift.astype(np.float64), scale.astype(np.float64)

    @classmethod
    def fit(cls, kind: str, train: np.ndarray) -> "Scaler":
        width = train.shape[1]
        if kind == "standard":
            shift, scale = train.mean(axis=0), train.std(axis=0)
        elif kind == "minmax":
            shift, scale = train.min(axis=0), train.max(axis=0) - train.min(axis=0)
        else:
            shift, scale = np.zeros(width), np.ones(width)
        return cls(kind, shift, np.where(scale > 0, scale, 1.0))  # a constant column stays finite

    def transform(self, values: np.ndarray, cols: Optional[Sequence[int]] = None) -> np.ndarray:
        shift, scale = (self.shift, self.scale) if cols is None else (self.shift[cols], self.scale[cols])
        return (values - shift) / scale

    def inverse(self, values: np.ndarray, cols: Optional[Sequence[int]] = None) -> np.ndarray:
        shift, scale = (self.shift, self.scale) if cols is None else (self.shift[cols], self.scale[cols])
        return values * scale + shift

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Scaler":
        return cls(obj["kind"], np.asarray(obj["shift"]), np.asarray(obj["scale"]))


def read_json(path: Path, what: str) -> Any:
    """A run's JSON file (a regular file of bounded size), parsed; its shape is the caller's to check."""
    from rnnlab.common.safeio import MAX_CONFIG_BYTES, read_bytes_bounded

    if not path.exists():
        raise RunDirError(path, f"missing ({what})")
    raw = read_bytes_bounded(path, MAX_CONFIG_BYTES, what, RunDirError)
    try:
        return json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise RunDirError(path, "corrupted (not valid JSON)") from None


# ----------------------------------------------------------------------------- series.json, read strictly

SCALER_KINDS = ("standard", "minmax", "none")


def _finite_numbers(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v)


def _names(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v)


def _positive(v: Any, kind: Any) -> bool:
    return v is None or (isinstance(v, kind) and not isinstance(v, bool) and 0 < v < float("inf"))


def check_series_artifact(data: Any, path: Path) -> dict[str, Any]:
    """A parsed ``series.json`` when every field rnnlab reads has its type and the parts agree
    (targets among the inputs, one scaler entry per input), else ``RunDirError`` naming the field."""
    def bad(field: str, want: str) -> RunDirError:
        value = data.get(field) if isinstance(data, dict) and "." not in field else None
        got = "" if value is None else f", got {repr(value)[:40]}"
        return RunDirError(path, f"wrong shape: '{field}' must be {want}{got}")

    if not isinstance(data, dict):
        raise RunDirError(path, "wrong shape: not a JSON object")
    if not isinstance(data.get("path"), str):
        raise bad("path", "a string (the data file)")
    if not _names(data.get("inputs")):
        raise bad("inputs", "a non-empty list of column names")
    inputs = data["inputs"]
    if not _names(data.get("targets")) or not set(data["targets"]) <= set(inputs):
        raise bad("targets", "a non-empty list of column names among the inputs")
    freq = data.get("frequency")
    if not isinstance(freq, dict):
        raise bad("frequency", "a mapping with seconds and months")
    if not _positive(freq.get("seconds"), (int, float)) or not _positive(freq.get("months"), int) \
            or not isinstance(freq.get("month_end", False), bool):
        raise bad("frequency.seconds/months", "positive numbers or null (month_end: true or false)")
    scaler = data.get("scaler")
    if not isinstance(scaler, dict) or scaler.get("kind") not in SCALER_KINDS:
        raise bad("scaler.kind", f"one of {', '.join(SCALER_KINDS)}")
    for key in ("shift", "scale"):
        if not _finite_numbers(scaler.get(key), len(inputs)):
            raise bad(f"scaler.{key}", f"a list of {len(inputs)} finite numbers (one per input)")
    if any(v == 0 for v in scaler["scale"]):
        raise bad("scaler.scale", "non-zero numbers")
    return data


def read_series_artifact(path: Path) -> dict[str, Any]:
    """``series.json`` of a run, read back strictly."""
    return check_series_artifact(read_json(path, "the series' columns and scaler"), path)


def frequency_from_json(obj: dict[str, Any]) -> Frequency:
    return Frequency(obj.get("seconds"), obj.get("months"), bool(obj.get("month_end", False)))


__all__ = ["Fill", "Frequency", "Scaler", "Series", "check_series_artifact", "frequency_from_json",
           "infer_frequency", "parse_time", "read_json", "read_series", "read_series_artifact"]
