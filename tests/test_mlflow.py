"""MLflow tracking against a real local MLflow store (sqlite), read back with MLflow's own client:
a run logged live, a sweep as a parent run with nested trials, `rnnlab track` after the fact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import build_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.integrations.mlflow_logging import default_uri

from .conftest import SINE_TINY, deep_merge

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module: creating an MLflow database takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def search(uri: str, experiment: str, **kw: Any) -> list[Any]:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[experiment], output_format="list", **kw)


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def artifacts(uri: str, run_id: str, folder: str | None = None) -> list[str]:
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    return sorted(Path(f.path).name for f in client.list_artifacts(run_id, folder))


def test_a_run_is_tracked_live_with_params_metrics_tags_and_artifacts(store: str, tmp_path: Path) -> None:
    raw = deep_merge(SINE_TINY, {"name": "live", "logging": {
        "plots": True, "mlflow": {"tracking_uri": store, "experiment": "live"}}})
    run = train_run(build_experiment(raw), tmp_path, Reporter(quiet=True))
    (found,) = search(store, "live")
    assert found.data.tags["task"] == "sine" and found.data.tags["model"] == "lstm"
    assert found.data.tags["status"] == "completed" and found.data.tags["rnnlab.run_id"] == run.name
    assert found.info.status == "FINISHED"
    assert found.data.params["train.lr"] == "0.01" and found.data.params["model.hidden_size"] == "8"
    assert found.data.params["train.scheduler.name"] == "none"
    val = history(store, found.info.run_id, "val_mse")
    assert [step for step, _ in val] == [1, 2, 3]
    rows = [__import__("json").loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [v for _, v in val] == pytest.approx([r["val_mse"] for r in rows])
    assert "test_mse" in found.data.metrics and "best_val_mse" in found.data.metrics
    assert {"config.yaml", "summary.json", "plots"} <= set(artifacts(store, found.info.run_id))
    assert "learning_curves.png" in artifacts(store, found.info.run_id, "plots")


def test_a_sweep_is_a_parent_run_with_nested_trials(store: str, tmp_path: Path) -> None:
    base = deep_merge(SINE_TINY, {"logging": {"mlflow": {"tracking_uri": store, "experiment": "sweeps"}}})
    sweep = tmp_path / "sw.yaml"
    sweep.write_text(yaml.safe_dump({"name": "tracked", "base": base, "grid": {"model.hidden_size": [4, 6]}}))
    result = runner.invoke(app, ["sweep", str(sweep), "--runs-dir", str(tmp_path / "runs"), "--workers", "2"])
    assert result.exit_code == 0, result.output
    found = search(store, "sweeps")
    (parent,) = [r for r in found if "rnnlab.sweep_id" in r.data.tags]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(found) == 3 and len(children) == 2
    assert sorted(r.data.params["model.hidden_size"] for r in children) == ["4", "6"]
    for child in children:
        assert [s for s, _ in history(store, child.info.run_id, "val_mse")] == [1, 2, 3]
        assert child.data.tags["status"] == "completed"
    assert "best_val_mse" in parent.data.metrics and parent.data.tags["status"] == "completed"
    assert "summary.csv" in artifacts(store, parent.info.run_id)
    # tracking it again adds nothing: runs are matched by their rnnlab ids
    (sweep_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    again = runner.invoke(app, ["track", str(sweep_dir)])
    assert again.exit_code == 0, again.output
    assert "already tracked" in again.output and len(search(store, "sweeps")) == 3


def test_track_logs_a_finished_run_after_the_fact(store: str, tmp_path: Path) -> None:
    exp = build_experiment(deep_merge(SINE_TINY, {"name": "offline"}))
    run = train_run(exp, tmp_path, Reporter(quiet=True))
    result = runner.invoke(app, ["track", str(run), "--to", store, "--experiment", "offline"])
    assert result.exit_code == 0, result.output
    (found,) = search(store, "offline")
    assert found.data.tags["rnnlab.run_id"] == run.name
    assert [s for s, _ in history(store, found.info.run_id, "train_loss")] == [1, 2, 3]
    assert default_uri(tmp_path) == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"


def test_missing_mlflow_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_config) -> None:
    import builtins

    real = builtins.__import__

    def no_mlflow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "mlflow":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    config = write_config({"logging": {"mlflow": True}})
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: logging.mlflow: needs MLflow: pip install 'rnnlab[mlflow]' "
                                     "(or set logging.mlflow: false)")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
