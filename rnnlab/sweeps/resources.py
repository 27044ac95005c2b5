"""Per-trial resources of the submitit backends (``submitit_backend``): the sweep file's ``slurm:``
section and ``rnnlab sweep --slurm KEY=VALUE``."""

from __future__ import annotations

import math
import re
from typing import Any

from rnnlab.errors import ConfigError
from rnnlab.registry import did_you_mean

RESOURCES = {  # key in slurm: / --slurm -> what it sets per trial
    "partition": "the Slurm partition",
    "time": "the time limit per trial, minutes or [H:]MM:SS (default 60)",
    "cpus": "CPUs per trial (default: the trial's train.threads)",
    "mem": "memory per trial, e.g. 8G or 500M (default: the partition's)",
    "gpus": "GPUs per trial (default 0)",
}
DEFAULT_MINUTES = 60


def parse_resources(raw: Any, where: str, section: str = "slurm") -> dict[str, Any]:
    """The ``slurm:`` section (or ``--slurm`` pairs, strings; ``section`` empty) checked and typed."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(where, f"{section}: must map {', '.join(RESOURCES)} to values, got {raw!r}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in RESOURCES:
            hint = did_you_mean(str(key), list(RESOURCES))
            raise ConfigError(where, f"{section + '.' if section else ''}{key}: unknown resource{hint}; "
                              f"allowed: {', '.join(RESOURCES)}")
        out[key] = _resource(key, value, where, f"{section}.{key}" if section else key)
    return out


def _resource(key: str, value: Any, where: str, label: str) -> Any:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if key == "partition" and text:
        return text
    if key == "time" and text and re.fullmatch(r"\d+(:\d\d){0,2}", text):
        parts = [int(p) for p in text.split(":")]
        seconds = (parts[0] * 60 if len(parts) == 1
                   else sum(p * 60 ** i for i, p in enumerate(reversed(parts))))
        if seconds > 0:
            return math.ceil(seconds / 60)
    if key in ("cpus", "gpus") and text and text.isdigit() and int(text) >= (1 if key == "cpus" else 0):
        return int(text)
    if key == "mem" and text and re.fullmatch(r"\d+[KMGT]?", text.upper()):
        return text.upper()
    raise ConfigError(where, f"{label}: must be {RESOURCES[key].split(' (')[0]}, got {value!r}")


