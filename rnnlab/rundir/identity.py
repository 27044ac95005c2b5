"""Checkpoints that know their run.

Every checkpoint rnnlab writes (``last.pt`` and ``best.pt``) carries ``identity``: the run's id
and unique id (``summary.json``'s ``run_id`` and ``run_uuid``, fixed when the run is created, so
renaming or copying the whole run directory keeps them; two runs started in the same second with
the same name share an id but not a uuid) and a SHA-256 of the run's resolved config, over the
dotted keys listed with it (``keys``). The keys that ``--resume`` may change
(``SAFE_TO_CHANGE``) and ``name`` are left out, so a resumed run's checkpoints stay its own;
keys added to rnnlab after a checkpoint was written are not in its list, so a newer rnnlab still
recognises it.

``check`` refuses a checkpoint whose id or config hash is not the run's (a ``best.pt`` copied from
another run of the same model shape would otherwise evaluate "fine"), unless the caller allows
foreign checkpoints (``--allow-foreign-checkpoint``).

Checkpoints written before identities existed have no ``identity`` entry: they are accepted as
the run's own (as before; ``--resume`` still compares a ``last.pt``'s saved config with
``config.yaml``), and the next checkpoint a resume writes carries an identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from rnnlab.config.loading import SAFE_TO_CHANGE
from rnnlab.config.schema import flatten
from rnnlab.errors import RunDirError

EXCLUDED = ("name",)
OVERRIDE = "--allow-foreign-checkpoint"




def _excluded(key: str) -> bool:

    return any(key == k or key.startswith(k + ".") for k in (*EXCLUDED, *SAFE_TO_CHANGE))


def config_keys(config: dict[str, Any]) -> list[str]:
    """The dotted keys of ``config`` that make up its identity."""
    return sorted(k for k in flatten(config) if not _excluded(k))


def config_sha256(config: dict[str, Any], keys: list[str]) -> str:
    flat = flatten(config)
    items = [[k, flat.get(k, "<absent>")] for k in keys]
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def make_identity(run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint of the run in ``run_dir``, trained with ``config``, carries."""
    keys = config_keys(config)
    run_id, run_uuid = run_of(run_dir)
    return {"run_id": run_id, "run_uuid": run_uuid, "config_sha256": config_sha256(config, keys),
            "keys": keys}


def run_of(run_dir: Path) -> tuple[str, Optional[str]]:
    """The run's id and unique id from ``summary.json`` (``run_id``, ``run_uuid``); the
    directory's name and None when the summary does not say (runs from before identities)."""
    from rnnlab.rundir.files import read_summary

    try:
        summary = read_summary(run_dir)
    except RunDirError:
        summary = {}
    run_id, run_uuid = summary.get("run_id"), summary.get("run_uuid")
    return (run_id if isinstance(run_id, str) and run_id else Path(run_dir).name,
            run_uuid if isinstance(run_uuid, str) and run_uuid else None)


def foreign_reason(ckpt: dict[str, Any], run_dir: Path, config: Optional[dict[str, Any]]
                   ) -> Optional[str]:
    """Why ``ckpt`` is not a checkpoint of this run (None: it is, or it predates identities).
    With ``config`` None only the run is compared (``--resume`` compares the whole config
    itself, naming the key that differs)."""
    ident = ckpt.get("identity")
    if ident is None:
        return None
    if not (isinstance(ident, dict) and isinstance(ident.get("run_id"), str)
            and isinstance(ident.get("run_uuid"), (str, type(None)))
            and isinstance(ident.get("config_sha256"), str) and isinstance(ident.get("keys"), list)
            and all(isinstance(k, str) for k in ident["keys"])):
        return "its identity record is damaged"
    own_id, own_uuid = run_of(run_dir)
    theirs = ident["run_uuid"]
    if (theirs is not None and own_uuid is not None and theirs != own_uuid) or ident["run_id"] != own_id:
        if ident["run_id"] == own_id:
            return f"it was written by another run that has the same id ({own_id!r})"
        return f"it was written by run {ident['run_id']!r}, not by this run ({own_id!r})"
    if config is not None and config_sha256(config, ident["keys"]) != ident["config_sha256"]:
        return "it was trained with another config than this run's config.yaml"
    return None


def check(ckpt: dict[str, Any], path: Path, run_dir: Path, config: Optional[dict[str, Any]],
          allow_foreign: bool = False) -> None:
    """Refuse a checkpoint of another run (one line naming the file), unless ``allow_foreign``."""
    if allow_foreign:
        return
    reason = foreign_reason(ckpt, run_dir, config)
    if reason is not None:
        raise RunDirError(path, f"checkpoint belongs to another run: {reason}; refused "
                          f"({OVERRIDE} uses it anyway)")

