"""The shape of the run files read back (``summary.json``, ``metrics.jsonl`` rows): valid JSON is
not enough, a field must also have its type, so that a damaged or hand-edited file is reported as
such (``RunDirError``: ``summary.json: wrong shape: 'status' must be a string, got 7``) instead of
crashing whatever reads it. Keys rnnlab does not know are allowed (newer versions add fields)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rnnlab.errors import RunDirError


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _metrics(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and (v[k] is None or _number(v[k])) for k in v)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


_STR = (lambda v: isinstance(v, str), "a string")
_OPT_STR = (_optional(lambda v: isinstance(v, str)), "a string or null")
_INT = (_integer, "an integer")
_OPT_INT = (_optional(_integer), "an integer or null")
_NUM = (_number, "a number")
_BOOL = (lambda v: isinstance(v, bool), "true or false")
_METRICS = (_metrics, "a mapping of metric names to numbers")
_DICT = (lambda v: isinstance(v, dict), "a mapping")
_LIST = (lambda v: isinstance(v, list), "a list")
_VECTORS = (lambda v: isinstance(v, dict) and isinstance(v.get("path"), str)
            and isinstance(v.get("sha256"), str) and _number(v.get("coverage")),
            "a mapping with path, sha256 and coverage")

SUMMARY_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "status": _STR, "run_id": _STR, "run_uuid": _STR, "name": _OPT_STR, "task": _STR, "model": _STR,
    "metric": _STR, "mode": (lambda v: v in ("min", "max"), "'min' or 'max'"),
    "test": _METRICS, "best_val": _METRICS, "best_epoch": _OPT_INT, "epochs_completed": _INT,
    "steps": _INT, "train_seconds": _NUM, "parameters": _INT, "threads": _OPT_INT,
    "seed": _INT, "device": _STR, "gpu": _OPT_STR, "precision": _STR, "stopped_early": _BOOL,
    "started": _STR, "finished": _STR, "error": _STR, "command": _STR, "cpu": _STR,
    "data": _DICT, "determinism": _DICT, "versions": _DICT, "resumed": _LIST, "plugins": _LIST,
    "distributed": (_optional(lambda v: isinstance(v, dict)), "a mapping or null"),
    "embedding_vectors": _VECTORS,
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_summary(data: Any, path: Path) -> dict[str, Any]:
    """``data`` (a parsed summary.json) when every known field has its type, else RunDirError."""
    if not isinstance(data, dict):
        raise RunDirError(path, "summary.json is not a JSON object")
    for key, (check, kind) in SUMMARY_FIELDS.items():
        if key in data and not check(data[key]):
            raise RunDirError(path, f"summary.json has the wrong shape: '{key}' must be {kind}, "
                              f"got {_shown(data[key])}")
    dist = data.get("distributed")
    if isinstance(dist, dict) and not (_integer(dist.get("world_size"))
                                       and isinstance(dist.get("backend"), str)):
        raise RunDirError(path, "summary.json has the wrong shape: 'distributed' needs world_size "
                          "and backend")
    return data


def check_metrics_rows(rows: list[Any], path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows: JSON objects with an integer ``epoch`` and numbers (or null) as values."""
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise RunDirError(path, f"line {number} is not a JSON object")
        if not _integer(row.get("epoch")):
            raise RunDirError(path, f"line {number}: 'epoch' must be an integer, got "
                              f"{_shown(row.get('epoch'))}")
        for key, value in row.items():
            if not (value is None or _number(value)):
                raise RunDirError(path, f"line {number}: '{key}' must be a number, got {_shown(value)}")
    return rows
