"""Bounded numbers: ``check_number``, the one check for a number given on the command line, in a
sweep file or to the Python API: its type, finite, within its range, with the reason for a cap in
the message (``--length: must be an integer from 0 to 1000000 (one model step per character), got
...``); and the caps themselves."""

from __future__ import annotations

import math
from typing import Any, Optional

from rnnlab.errors import ConfigError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what torch's generators and counters hold
MAX_GENERATE = 1_000_000  # `generate --length`: one model step per character
MAX_TEMPERATURE = 1e3  # `generate --temperature`: above it every character is about equally likely
MIN_TEMPERATURE = 1e-3  # ... below it (but not 0) the logits / temperature overflow
MAX_GRADFLOW_STEPS = 100_000  # `gradflow --steps`: a measurement, not a training run
MAX_TRIALS = 10_000  # a sweep's trials (grid x random draws x seeds, or an Optuna search's)


def _shown_number(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 30 else f"a {len(str(abs(value)))}-digit number" \
        if isinstance(value, int) else text[:27] + "..."


def check_number(value: Any, where: str, *, integer: bool = False, low: Optional[float] = None,
                 high: Optional[float] = None, why: str = "") -> Any:
    """``value`` when it is a number (an integer if ``integer``; never a boolean), finite and within
    ``low``..``high`` (inclusive); else one ConfigError naming ``where``, the range and ``why``."""
    kind = "an integer" if integer else "a finite number"
    if low is not None and high is not None:
        bounds = f" from {low:g} to {high:g}" if not integer else f" from {low} to {high}"
    elif low is not None:
        bounds = f" >= {low:g}"
    elif high is not None:
        bounds = f" <= {high:g}"
    else:
        bounds = ""
    numeric = (int,) if integer else (int, float)
    ok = (isinstance(value, numeric) and not isinstance(value, bool)
          and (isinstance(value, int) or math.isfinite(value))
          and (low is None or value >= low) and (high is None or value <= high))
    if not ok:
        reason = f" ({why})" if why else ""
        raise ConfigError(where, f"must be {kind}{bounds}{reason}, got {_shown_number(value)}")
    return value
