"""The one rule for run names, wherever a name comes from (``--name``, the config's ``name``,
``--set name=...``, a sweep's trial names):

- refused (``error: <where>: invalid run name ...``, exit 2): an empty name, ``.`` or ``..``, a
  name holding ``/`` or ``\\``, or any control character (newline, tab, NUL, DEL, C1 controls),
  or longer than ``MAX_NAME`` characters;
- kept as given in ``summary.json`` (``name``) and in the config; the run *directory* is
  ``<UTC timestamp>_<name>`` with every character outside letters, digits, ``.``, ``_`` and ``-``
  replaced by ``-`` (so the directory is a portable file name); see ``runs.safe_name``.

This module has no dependencies, so the config schema and the run directory code share it.
"""

from __future__ import annotations

import unicodedata
from typing import Optional

MAX_NAME = 200


def name_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot name a run, or None."""
    if not name or name in (".", ".."):
        return "must not be empty, '.' or '..'"
    if "/" in name or "\\" in name:
        return "must not contain '/' or '\\' (a run name is not a path)"
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        return f"must not contain control characters (found {bad!r})"
    if len(name) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters, got {len(name)}"
    return None
