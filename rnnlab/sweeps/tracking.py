"""Sweeps and finished runs in MLflow: a sweep logged as a parent run with its trials nested (when it
stops, and again by ``rnnlab track``, which adds only what is new), and ``rnnlab track RUN_OR_SWEEP``.
The store and the per-run logging: ``integrations.mlflow_logging``."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from rnnlab.errors import RnnlabError, RunDirError
from rnnlab.integrations.mlflow_logging import SWEEP_ENV, SWEEP_TAG, log_run, read_run_files
from rnnlab.integrations.mlflow_store import Store, check_uri, guarded, open_store, require_mlflow
from rnnlab.rundir import files as runs
from rnnlab.sweeps.results import read_records


def log_sweep(store: Store, sweep_dir: Path, checkpoint: bool = False) -> list[str]:
    """A sweep as a parent run with its trials' runs nested; lines saying what was logged."""
    meta, records = read_records(sweep_dir)
    parent = store.find(SWEEP_TAG, sweep_dir.name)
    lines = []
    if parent is None:
        parent = store.create(str(meta.get("sweep") or sweep_dir.name),
                              {SWEEP_TAG: sweep_dir.name, "rnnlab.kind": "sweep"})
        keys = meta.get("keys") or []
        store.log(parent, {"sweep.keys": json.dumps(keys), "sweep.metric": str(meta.get("metric")),
                           "sweep.mode": str(meta.get("mode")), "sweep.split": str(meta.get("split")),
                           "sweep.workers": str(meta.get("workers"))})
        lines.append(f"sweep {sweep_dir.name}: parent run {parent}")
    else:
        lines.append(f"sweep {sweep_dir.name}: parent run {parent} (already tracked)")
    logged = 0
    for record in records:
        run = Path(record.run) if record.run else None
        if run is None or not (run / runs.SUMMARY).is_file():
            continue
        run_id, new, _ = log_run(store, run, parent, checkpoint)
        if new and record.status == "pruned":
            store.client.set_tag(run_id, "status", "pruned")
        logged += new
        lines.append(f"{record.trial} {record.status}: run {run_id}{'' if new else ' (already tracked)'}")
    best = meta.get("best") or {}
    metrics = [(f"best_{meta.get('split')}_{meta.get('metric')}", float(best["score"]), 0)] \
        if isinstance(best.get("score"), (int, float)) else []
    counts = [(f"trials_{k}", float(v), 0) for k, v in (meta.get("counts") or {}).items()]
    store.log(parent, metrics=metrics + counts)
    store.client.set_tag(parent, "status", str(meta.get("status")))
    store.artifacts(parent, [sweep_dir / "summary.json", sweep_dir / "summary.csv", sweep_dir / "sweep.yaml"])
    store.artifacts(parent, sorted((sweep_dir / runs.PLOTS).glob("*.png")), "plots")
    store.end(parent, str(meta.get("status")))
    return lines

def track(source: Path, to: Optional[str] = None, experiment: Optional[str] = None) -> list[str]:
    """``rnnlab track RUN_OR_SWEEP``: log finished runs from their files."""
    if not source.is_dir():
        raise RunDirError(source, "not found: give a run or sweep directory")
    if to is not None:
        check_uri(to, "--to")
    require_mlflow("rnnlab track")
    if (source / "sweep.yaml").is_file():
        options = sweep_options(source)
        store = open_store(options, source.parent, to, experiment)
        with guarded(store):
            lines = log_sweep(store, source, bool(getattr(options, "log_checkpoint", False)))
    else:
        from rnnlab.config.loading import build_experiment, read_yaml

        run_dir = runs.resolve_run(source)
        exp = build_experiment(read_yaml(run_dir / runs.CONFIG), str(run_dir / runs.CONFIG))
        options = exp.config.logging.mlflow
        read_run_files(run_dir)  # a damaged run is refused before the store exists
        store = open_store(options, run_dir.parent, to, experiment)
        with guarded(store):
            run_id, new, note = log_run(store, run_dir, None, bool(getattr(options, "log_checkpoint", False)))
        lines = [f"{run_dir.name}: run {run_id}{'' if new else ' (already tracked)'}"]
        lines += [note] if note else []
    return [*lines, f"tracking store: {store.uri}"]

def sweep_options(sweep_dir: Path) -> Any:
    """The ``logging.mlflow`` options of a sweep's base config (None when it has none)."""
    from rnnlab.config.loading import build_experiment, read_yaml

    base = read_yaml(sweep_dir / "sweep.yaml").get("base")
    if not isinstance(base, dict):
        return None
    try:
        return build_experiment(base, str(sweep_dir / "sweep.yaml")).config.logging.mlflow
    except RnnlabError:
        return None

def base_options(base: dict[str, Any]) -> Any:
    """``logging.mlflow`` of a sweep's base config (None when absent or off)."""
    from pydantic import ValidationError

    from rnnlab.config.schema import LoggingConfig

    logging_ = base.get("logging") if isinstance(base, dict) else None
    try:
        return LoggingConfig.model_validate(logging_ if isinstance(logging_, dict) else {}).mlflow
    except ValidationError:
        return None  # reported with the trial configs

@contextmanager
def sweep_tracking(base: dict[str, Any], sweep_dir: Path, say: Callable[[str], None]) -> Iterator[None]:
    """While a sweep runs, its trials do not log themselves (``RNNLAB_MLFLOW_SWEEP``); when it
    stops, the sweep is logged as a parent run with every trial that has a run nested under it
    (``--resume`` and ``rnnlab track`` add only what is new)."""
    options = base_options(base)
    if options is None:
        yield
        return
    os.environ[SWEEP_ENV] = str(sweep_dir)
    try:
        yield
    finally:
        store = open_store(options, sweep_dir.parent)
        with guarded(store):
            log_sweep(store, sweep_dir, options.log_checkpoint)
        say(f"mlflow: sweep logged to {store.uri}")
