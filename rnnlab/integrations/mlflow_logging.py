"""MLflow tracking (``logging.mlflow``; extra ``rnnlab[mlflow]``), live while a run trains and after
the fact from a run's or a sweep's files (``rnnlab track``); the store itself: ``mlflow_store``.

What one rnnlab run becomes in MLflow: params = the resolved config's options in effect, flattened
to dotted keys (``train.lr``; ``hparams.in_effect``: no option of an optimizer or scheduler the run
did not use); metrics = every numeric column of ``metrics.jsonl`` with the epoch as the step, then
``best_val_<metric>`` and ``test_<metric>``; tags ``task``, ``model``, ``status``, ``rnnlab.run_id``
and ``rnnlab.run_uuid``; artifacts ``config.yaml``, ``summary.json``, ``plots/`` and, with
``log_checkpoint: true``, the model: ``checkpoints/best.pt`` and, where the installed MLflow has the
pytorch flavour (full ``mlflow``; not ``mlflow-skinny``), the model as ``runs:/<run id>/model``
(``mlflow.pytorch``; in MLflow 3 a logged model of the run); the tag
``rnnlab.model`` says which. A sweep is a parent run (tags ``rnnlab.sweep_id``, the sweep's summary
files and plots as artifacts, the best score as a metric) with one nested run per trial. Logging is
idempotent: a run already in the store (same ``run_uuid``, so a renamed or copied run directory is
recognised) or a sweep (same directory name) is not logged again, so ``rnnlab track`` after a
resumed sweep adds only what is new.

The default store is ``sqlite:///<runs dir>/mlflow.db`` with artifacts in ``<runs dir>/mlartifacts``
(MLflow 3 keeps its ``./mlruns`` file store in maintenance mode). Its UI needs the full package
(``pip install mlflow``; the extra installs mlflow-skinny, which has no UI server):
``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Optional

from rnnlab.integrations.mlflow_store import Store, check_uri, default_uri, open_store, require_mlflow
from rnnlab.rundir import files as runs

SWEEP_ENV = "RNNLAB_MLFLOW_SWEEP"  # set for trials: the sweep logs them, nested, itself
RUN_TAG, UUID_TAG, SWEEP_TAG = "rnnlab.run_id", "rnnlab.run_uuid", "rnnlab.sweep_id"
PARENT_TAG, MODEL_TAG = "mlflow.parentRunId", "rnnlab.model"
__all__ = ["Store", "default_uri", "open_store", "require_mlflow", "open_live"]


# ----------------------------------------------------------------------------- what is logged


def flatten(config: dict[str, Any]) -> dict[str, str]:
    """The config as MLflow params: dotted keys of the options in effect (``hparams.in_effect``),
    values as text (JSON but for strings)."""
    from rnnlab.integrations.hparams import in_effect

    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in in_effect(config).items()}


def numeric(row: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in row.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield f"{prefix}{key}", float(value)


def epoch_metrics(row: dict[str, Any]) -> list[tuple[str, float, int]]:
    step = int(row.get("epoch", 0))
    return [(k, v, step) for k, v in numeric(row) if k != "epoch"]


def identity_of(summary: dict[str, Any], run_dir: Path) -> tuple[str, Optional[str]]:
    """The run's id and unique id (``summary.json``'s ``run_id``, ``run_uuid``): what tells a
    run apart, whatever its directory is called now."""
    run_id, run_uuid = summary.get("run_id"), summary.get("run_uuid")
    return (run_id if isinstance(run_id, str) and run_id else run_dir.name,
            run_uuid if isinstance(run_uuid, str) and run_uuid else None)


def run_tags(summary: dict[str, Any], run_dir: Path) -> dict[str, str]:
    run_id, run_uuid = identity_of(summary, run_dir)
    tags = {RUN_TAG: run_id, "task": str(summary.get("task")), "model": str(summary.get("model")),
            "status": str(summary.get("status"))}
    if run_uuid is not None:
        tags[UUID_TAG] = run_uuid
    return tags


def tracked(store: Store, summary: dict[str, Any], run_dir: Path) -> Optional[str]:
    """The MLflow run already logged for this run (renamed or copied since: the same
    ``run_uuid``), else None. Runs logged before the uuid tag are matched by their ``run_id``."""
    run_id, run_uuid = identity_of(summary, run_dir)
    if run_uuid is not None:
        found = store.find(UUID_TAG, run_uuid)
        if found is not None:
            return found
    legacy = [r for r in store.search(RUN_TAG, run_id) if UUID_TAG not in r.data.tags]
    return legacy[0].info.run_id if legacy else None


def final_metrics(summary: dict[str, Any]) -> list[tuple[str, float, int]]:
    step = int(summary.get("epochs_completed") or 0)
    return ([(k, v, step) for k, v in numeric(summary.get("best_val") or {}, "best_val_")]
            + [(k, v, step) for k, v in numeric(summary.get("test") or {}, "test_")])


def run_files(run_dir: Path) -> list[tuple[list[Path], Optional[str]]]:
    plots = sorted((run_dir / runs.PLOTS).glob("*.png"))
    return [([run_dir / runs.CONFIG, run_dir / runs.SUMMARY], None), (plots, "plots")]


def log_files(store: Store, run_id: str, run_dir: Path, checkpoint: bool) -> Optional[str]:
    """A finished run's files as artifacts (with ``checkpoint``: its model too, ``log_model``);
    a note on how the model was logged, if it was."""
    for paths, folder in run_files(run_dir):
        store.artifacts(run_id, paths, folder)
    return log_model(store, run_id, run_dir) if checkpoint else None


def log_model(store: Store, run_id: str, run_dir: Path) -> Optional[str]:
    """``checkpoints/best.pt`` as an artifact, and the best model in MLflow's pytorch flavour
    (``runs:/<run id>/model``, loadable with ``mlflow.pytorch.load_model`` where rnnlab is
    importable) when the installed MLflow has it (mlflow-skinny lacks what it needs): a note
    saying which, also kept as the tag ``rnnlab.model``. None when the run has no best checkpoint."""
    best = run_dir / runs.CHECKPOINTS / "best.pt"
    if not best.is_file():
        return None
    store.artifacts(run_id, [best], "checkpoints")
    try:
        import mlflow.pytorch as flavour
    except ImportError as exc:
        note = (f"model logged as checkpoints/best.pt only: this MLflow has no pytorch flavour ({exc}); "
                "pip install mlflow for the pytorch flavour")
    else:
        try:
            log_flavour(store, run_id, run_dir, flavour)
            note = "model logged as runs:/<run id>/model (mlflow.pytorch) and checkpoints/best.pt"
        except Exception as exc:  # noqa: BLE001 - the flavour is an extra; the checkpoint is logged
            from rnnlab.integrations.mlflow_store import first_line

            note = f"model logged as checkpoints/best.pt only: mlflow.pytorch failed: {first_line(exc)}"
    store.client.set_tag(run_id, MODEL_TAG, note)
    return note


def log_flavour(store: Store, run_id: str, run_dir: Path, flavour: Any) -> None:
    """The run's best model (rebuilt from its own files) as ``model/`` in ``mlflow.pytorch``."""
    import inspect

    import mlflow
    import torch

    from rnnlab.training.evaluation import load_run

    _, _, _, model, _ = load_run(run_dir, "best", "cpu")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    accepts = inspect.signature(flavour.log_model).parameters
    where: dict[str, Any] = {"name": "model"} if "name" in accepts else {"artifact_path": "model"}  # MLflow 2
    if "serialization_format" in accepts:  # MLflow 3's default, pt2, traces forward: not for every model
        where["serialization_format"] = "pickle"
    mlflow.set_tracking_uri(store.uri)
    try:
        with mlflow.start_run(run_id=run_id):
            flavour.log_model(model, pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"], **where)
    finally:
        mlflow.set_tracking_uri(before)


def read_run_files(run_dir: Path) -> tuple[dict[str, Any], dict[str, str], list[Any]]:
    """What ``log_run`` logs, read (and so checked) first: summary, flattened config, metric points.
    A damaged file is one line here, before a store is opened or a half-logged run left in one."""
    from rnnlab.config.loading import read_yaml

    summary = runs.read_summary(run_dir)
    params = flatten(read_yaml(run_dir / runs.CONFIG) or {})
    metrics = [m for row in runs.read_metrics(run_dir) for m in epoch_metrics(row)]
    return summary, params, metrics


def log_run(store: Store, run_dir: Path, parent: Optional[str] = None, checkpoint: bool = False
            ) -> tuple[Optional[str], bool, Optional[str]]:
    """One finished run from its files: (MLflow run id, whether it was logged now, the model note)."""
    summary, params, metrics = read_run_files(run_dir)  # all of them before the store is touched
    known = tracked(store, summary, run_dir)
    if known is not None:
        return known, False, None
    tags = run_tags(summary, run_dir)
    if parent is not None:
        tags[PARENT_TAG] = parent
    run_id = store.create(summary.get("name") or run_dir.name, tags)
    store.log(run_id, params, metrics + final_metrics(summary))
    note = log_files(store, run_id, run_dir, checkpoint)
    store.end(run_id, str(summary.get("status")))
    return run_id, True, note


# ----------------------------------------------------------------------------- live


class LiveRun:
    """A run logged while it trains: params at the start, each epoch's metrics as it ends,
    final metrics, artifacts and status when the run closes."""

    def __init__(self, store: Store, run_dir: Path, summary: dict[str, Any], config: dict[str, Any],
                 checkpoint: bool) -> None:
        self.store, self.run_dir, self.checkpoint = store, run_dir, checkpoint
        self.run_id = tracked(store, summary, run_dir)  # a resumed run continues its MLflow run
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
        log_files(self.store, self.run_id, self.run_dir, self.checkpoint)
        self.store.end(self.run_id, status)


def check_options(options: Any, where: str = "logging.mlflow") -> None:
    """Before anything is written: the package is there and the store's URI is one MLflow can
    use and rnnlab can write (``mlflow_store.check_uri``)."""
    require_mlflow(where)
    if getattr(options, "tracking_uri", None):
        check_uri(options.tracking_uri, f"{where}.tracking_uri")


def check_mlflow(options: Any) -> None:
    """Before a run directory exists: ``check_options`` (when asked for, and not a sweep's trial)."""
    if options is not None and not os.environ.get(SWEEP_ENV):
        check_options(options)


def open_live(options: Any, run_dir: Path, summary: dict[str, Any], config: dict[str, Any]
              ) -> Optional[LiveRun]:
    """The live MLflow run of a training run, or None (not asked for; or a sweep's trial, which
    the sweep logs nested under its own run when it ends)."""
    if options is None or os.environ.get(SWEEP_ENV):
        return None
    store = open_store(options, run_dir.parent)
    return LiveRun(store, run_dir, summary, config, options.log_checkpoint)
