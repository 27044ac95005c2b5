"""Where a series run reads its data and which of the file's columns it reads: ``data.path``
resolved (the built-in CO2 series, the current folder, then the data root) and the inputs and
targets from ``data.inputs``/``data.targets`` (M, S, MS or named columns). Only training and
``eval`` read them; a finished run's inference takes both from its ``series.json``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab.errors import ConfigError, DataError
from rnnlab.tasks.base import data_root

if TYPE_CHECKING:
    from rnnlab.tasks.series import SeriesData

BUILTIN = Path(__file__).resolve().parents[1] / "data" / "co2_monthly.csv"


def resolve_path(d: "SeriesData") -> Path:
    if d.path is None:
        return BUILTIN
    path = Path(d.path).expanduser()
    root = data_root(d)
    if not path.is_absolute() and root is not None and (root / path).exists():
        return root / path
    if path.exists() or path.is_absolute():
        return path
    if root is None:
        raise DataError(f"data.path: {d.path}", "not found in the current folder, and no data root is "
                        "set to look under (data.root or RNNLAB_DATA, e.g. RNNLAB_DATA=../shared/data)")
    raise DataError(f"data.path: {d.path}", f"not found in the current folder nor under the data "
                    f"root {root}")


def columns_for(d: "SeriesData", numeric: list[str]) -> tuple[list[str], list[str]]:
    """(inputs, targets) from data.inputs/targets and the file's numeric columns."""
    given = [d.targets] if isinstance(d.targets, str) else d.targets
    last = numeric[-1:]
    if isinstance(d.inputs, list):
        inputs, targets = list(d.inputs), given or list(d.inputs)
    elif d.inputs == "S":
        targets = given or last
        inputs = list(targets)
    elif d.inputs == "MS":
        inputs, targets = list(numeric), given or last
    else:
        inputs, targets = list(numeric), given or list(numeric)
    missing = [t for t in targets if t not in inputs]
    if missing:
        raise ConfigError("data.targets", f"{missing[0]!r} is not among the inputs read "
                          f"({', '.join(inputs)}); a forecast reads its targets' history")
    return inputs, list(targets)
