"""MLflow tracking (``logging.mlflow``; extra ``rnnlab[mlflow]``), live while a run trains and after
the fact from a run's or a sweep's files (``rnnlab track``).

What one rnnlab run becomes in MLflow: params = the resolved config flattened to dotted keys
(``train.lr``); metrics = every numeric column of ``metrics.jsonl`` with the epoch as the step, then
``best_val_<metric>`` and ``test_<metric>``; tags ``task``, ``model``, ``status`` and
``rnnlab.run_id``; artifacts ``config.yaml``, ``summary.json``, ``plots/`` (and the best
checkpoint with ``log_checkpoint: true``). A sweep is a parent run (tags ``rnnlab.sweep_id``, the
sweep's summary files and plots as artifacts, the best score as a metric) with one nested run per
trial. Logging is idempotent: a run or sweep already in the store (same ``rnnlab.*`` id tag) is not
logged again, so ``rnnlab track`` after a resumed sweep adds only what is new.

The default store is ``sqlite:///<runs dir>/mlflow.db`` with artifacts in ``<runs dir>/mlartifacts``
(MLflow 3 keeps its ``./mlruns`` file store in maintenance mode): ``mlflow ui --backend-store-uri
sqlite:///runs/mlflow.db``.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from . import runs
from .errors import ConfigError, RnnlabError, RunDirError

DB, ARTIFACTS = "mlflow.db", "mlartifacts"
DEFAULT_EXPERIMENT = "rnnlab"
SWEEP_ENV = "RNNLAB_MLFLOW_SWEEP"  # set for trials: the sweep logs them, nested, itself
STATUS = {"completed": "FINISHED", "failed": "FAILED", "diverged": "FAILED", "interrupted": "KILLED",
          "pruned": "KILLED", "running": "RUNNING", "incomplete": "FAILED"}
RUN_TAG, SWEEP_TAG, PARENT_TAG = "rnnlab.run_id", "rnnlab.sweep_id", "mlflow.parentRunId"


def require_mlflow(where: str = "logging.mlflow") -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError(where, "needs MLflow: pip install 'rnnlab[mlflow]' "
                          "(or set logging.mlflow: false)") from None
    return MlflowClient


def default_uri(runs_dir: Path) -> str:
    return f"sqlite:///{(runs_dir / DB).resolve()}"


class Store:
    """One tracking store and experiment, reached through MLflow's own client."""

    def __init__(self, uri: str, experiment: Optional[str], artifacts: Optional[Path], where: str) -> None:
        client_cls = require_mlflow(where)
        import logging

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no alembic notes on a new store
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.uri = uri
        self.client = client_cls(tracking_uri=uri)
        name = experiment or DEFAULT_EXPERIMENT
        try:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                location = artifacts.resolve().as_uri() if artifacts is not None else None
                self.experiment_id = self.client.create_experiment(name, artifact_location=location)
            else:
                self.experiment_id = found.experiment_id
        except Exception as exc:  # noqa: BLE001 - a store MLflow cannot open: the user's URI
            text = str(exc).strip().splitlines()
            reason = text[0][:200] if text else exc
            raise ConfigError(where, f"cannot open MLflow store {uri}: {reason}") from None

    def find(self, tag: str, value: str) -> Optional[str]:
        found = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{tag}` = '{value}'",
                                        max_results=1)
        return found[0].info.run_id if found else None

    def create(self, name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def log(self, run_id: str, params: Optional[dict[str, str]] = None,
            metrics: list[tuple[str, float, int]] | tuple[()] = ()) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        items = [Param(k, v[:6000]) for k, v in (params or {}).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])
        points = [Metric(k, v, now, step) for k, v, step in metrics]
        for i in range(0, len(points), 1000):
            self.client.log_batch(run_id, metrics=points[i:i + 1000])

    def artifacts(self, run_id: str, paths: list[Path], folder: Optional[str] = None) -> None:
        for path in paths:
            if path.is_file():
                self.client.log_artifact(run_id, str(path), folder)

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, STATUS.get(status, "FAILED"))


def open_store(options: Any, runs_dir: Path, to: Optional[str] = None,
               experiment: Optional[str] = None) -> Store:
    """The store a run's ``logging.mlflow`` options (or ``--to``) name, else the default one."""
    uri = to or getattr(options, "tracking_uri", None)
    artifacts = None
    if uri is None:
        uri, artifacts = default_uri(runs_dir), runs_dir / ARTIFACTS
    elif uri.startswith("sqlite:///"):  # artifacts beside the database, not in ./mlruns of the cwd
        artifacts = Path(uri[len("sqlite:///"):]).parent / ARTIFACTS
    where = "--to" if to else "logging.mlflow.tracking_uri" if getattr(options, "tracking_uri", None) \
        else "logging.mlflow"
    return Store(uri, experiment or getattr(options, "experiment", None), artifacts, where)


# ----------------------------------------------------------------------------- what is logged


def flatten(config: dict[str, Any]) -> dict[str, str]:
    """The config as MLflow params: dotted keys, values as text (JSON but for strings)."""
    from .sections import flatten as dotted

    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in dotted(config).items()}


def numeric(row: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in row.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield f"{prefix}{key}", float(value)


def epoch_metrics(row: dict[str, Any]) -> list[tuple[str, float, int]]:
    step = int(row.get("epoch", 0))
    return [(k, v, step) for k, v in numeric(row) if k != "epoch"]


def run_tags(summary: dict[str, Any], run_dir: Path) -> dict[str, str]:
    return {RUN_TAG: run_dir.name, "task": str(summary.get("task")), "model": str(summary.get("model")),
            "status": str(summary.get("status"))}


def final_metrics(summary: dict[str, Any]) -> list[tuple[str, float, int]]:
    step = int(summary.get("epochs_completed") or 0)
    return ([(k, v, step) for k, v in numeric(summary.get("best_val") or {}, "best_val_")]
            + [(k, v, step) for k, v in numeric(summary.get("test") or {}, "test_")])


def run_files(run_dir: Path, checkpoint: bool) -> list[tuple[list[Path], Optional[str]]]:
    plots = sorted((run_dir / runs.PLOTS).glob("*.png"))
    files = [([run_dir / runs.CONFIG, run_dir / runs.SUMMARY], None), (plots, "plots")]
    if checkpoint:
        files.append(([run_dir / runs.CHECKPOINTS / "best.pt"], "checkpoints"))
    return files


def log_run(store: Store, run_dir: Path, parent: Optional[str] = None, checkpoint: bool = False
            ) -> tuple[Optional[str], bool]:
    """One finished run from its files: (MLflow run id, whether it was logged now)."""
    summary = runs.read_summary(run_dir)
    known = store.find(RUN_TAG, run_dir.name)
    if known is not None:
        return known, False
    import yaml

    config = (run_dir / runs.CONFIG).read_text(encoding="utf-8")

    tags = run_tags(summary, run_dir)
    if parent is not None:
        tags[PARENT_TAG] = parent
    run_id = store.create(summary.get("name") or run_dir.name, tags)
    metrics = [m for row in runs.read_jsonl(run_dir / runs.METRICS) for m in epoch_metrics(row)]
    store.log(run_id, flatten(yaml.safe_load(config) or {}), metrics + final_metrics(summary))
    for paths, folder in run_files(run_dir, checkpoint):
        store.artifacts(run_id, paths, folder)
    store.end(run_id, str(summary.get("status")))
    return run_id, True


def log_sweep(store: Store, sweep_dir: Path, checkpoint: bool = False) -> list[str]:
    """A sweep as a parent run with its trials' runs nested; lines saying what was logged."""
    from .sweeps.results import read_records

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
        run_id, new = log_run(store, run, parent, checkpoint)
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
    require_mlflow("rnnlab track")
    if not source.is_dir():
        raise RunDirError(source, "not found: give a run or sweep directory")
    if (source / "sweep.yaml").is_file():
        options = sweep_options(source)
        store = open_store(options, source.parent, to, experiment)
        lines = log_sweep(store, source, bool(getattr(options, "log_checkpoint", False)))
    else:
        from .config import build_experiment, read_yaml

        run_dir = runs.resolve_run(source)
        exp = build_experiment(read_yaml(run_dir / runs.CONFIG), str(run_dir / runs.CONFIG))
        options = exp.config.logging.mlflow
        store = open_store(options, run_dir.parent, to, experiment)
        run_id, new = log_run(store, run_dir, None, bool(getattr(options, "log_checkpoint", False)))
        lines = [f"{run_dir.name}: run {run_id}{'' if new else ' (already tracked)'}"]
    return [*lines, f"tracking store: {store.uri}"]


def sweep_options(sweep_dir: Path) -> Any:
    """The ``logging.mlflow`` options of a sweep's base config (None when it has none)."""
    from .config import build_experiment, read_yaml

    base = read_yaml(sweep_dir / "sweep.yaml").get("base")
    if not isinstance(base, dict):
        return None
    try:
        return build_experiment(base, str(sweep_dir / "sweep.yaml")).config.logging.mlflow
    except RnnlabError:
        return None


# ----------------------------------------------------------------------------- live


class LiveRun:
    """A run logged while it trains: params at the start, each epoch's metrics as it ends,
    final metrics, artifacts and status when the run closes."""

    def __init__(self, store: Store, run_dir: Path, summary: dict[str, Any], config: dict[str, Any],
                 checkpoint: bool) -> None:
        self.store, self.run_dir, self.checkpoint = store, run_dir, checkpoint
        self.run_id = store.find(RUN_TAG, run_dir.name)  # a resumed run continues its MLflow run
        if self.run_id is None:
            self.run_id = store.create(str(summary.get("name") or run_dir.name), run_tags(summary, run_dir))
            store.log(self.run_id, flatten(config))
        else:
            store.client.set_tag(self.run_id, "status", "running")

    def epoch(self, row: dict[str, Any]) -> None:
        self.store.log(self.run_id, metrics=epoch_metrics(row))

    def close(self, summary: dict[str, Any]) -> None:
        status = str(summary.get("status"))
        self.store.client.set_tag(self.run_id, "status", status)
        self.store.log(self.run_id, metrics=final_metrics(summary))
        for paths, folder in run_files(self.run_dir, self.checkpoint):
            self.store.artifacts(self.run_id, paths, folder)
        self.store.end(self.run_id, status)


def check_mlflow(options: Any) -> None:
    """Before a run directory exists: the package is there (when asked for)."""
    if options is not None and not os.environ.get(SWEEP_ENV):
        require_mlflow()


def open_live(options: Any, run_dir: Path, summary: dict[str, Any], config: dict[str, Any]
              ) -> Optional[LiveRun]:
    """The live MLflow run of a training run, or None (not asked for; or a sweep's trial, which
    the sweep logs nested under its own run when it ends)."""
    if options is None or os.environ.get(SWEEP_ENV):
        return None
    store = open_store(options, run_dir.parent)
    return LiveRun(store, run_dir, summary, config, options.log_checkpoint)


# ----------------------------------------------------------------------------- sweeps


def base_options(base: dict[str, Any]) -> Any:
    """``logging.mlflow`` of a sweep's base config (None when absent or off)."""
    from pydantic import ValidationError

    from .sections import LoggingConfig

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
        log_sweep(store, sweep_dir, options.log_checkpoint)
        say(f"mlflow: sweep logged to {store.uri}")
