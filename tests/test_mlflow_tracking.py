"""`rnnlab track` and logging.mlflow failing in one line, quickly (store URIs, read-only stores, an
unreachable server), filter values with quotes, dedup by run_uuid, only the options in effect, the
model, and a `track --help` that names the real default store; against real sqlite stores."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import build_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.integrations.hparams import in_effect
from rnnlab.integrations.mlflow_store import HTTP_BOUNDS, Store

from .conftest import SINE_TINY, deep_merge

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module: creating an MLflow database takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run (sgd with a cosine schedule) that tests copy before changing."""
    train = {"epochs": 2, "optimizer": "sgd", "scheduler": {"name": "cosine", "min_lr_ratio": 0.1}}
    raw = deep_merge(SINE_TINY, {"name": "base", "train": train})
    return train_run(build_experiment(raw), tmp_path_factory.mktemp("runs"), Reporter(quiet=True))


def copy_run(run: Path, where: Path, name: str | None = None) -> Path:
    out = where / (name or run.name)
    shutil.copytree(run, out)
    return out


def track(*args: str) -> Any:
    return runner.invoke(app, ["track", *args])


def logged(uri: str, experiment: str) -> list[Any]:
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(experiment_names=[experiment], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)


def one_error_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- store URIs


@pytest.mark.parametrize("uri, says", [
    ("notascheme://x", "unsupported tracking URI scheme 'notascheme'; give a directory, file://PATH, "
                       "sqlite:///PATH, http(s)://HOST[:PORT] or databricks"),
    ("sqlite://", "give a database file as sqlite:///PATH"),
    ("http://", "no host; give http://HOST[:PORT]"),
])
def test_a_bad_store_uri_is_one_line_before_any_work(trained: Path, tmp_path: Path, uri: str,
                                                     says: str) -> None:
    run = copy_run(trained, tmp_path)
    before = digest(tmp_path)
    line = one_error_line(track(str(run), "--to", uri))
    assert line.startswith("error: --to: ") and says in line
    assert digest(tmp_path) == before  # nothing written: no store, no artifacts


def test_a_bad_store_uri_in_the_config_stops_training_before_the_run_exists(tmp_path: Path,
                                                                            write_config) -> None:
    config = write_config({"logging": {"mlflow": {"tracking_uri": "notascheme://x"}}})
    line = one_error_line(runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")]))
    assert line.startswith("error: logging.mlflow.tracking_uri: 'notascheme://x': unsupported")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Any]:
    """make(path): that file or folder read-only for this process, even as root (chattr +i), or the
    test is skipped where neither works."""
    made: list[Path] = []

    def make(path: Path) -> None:
        path.chmod(0o555 if path.is_dir() else 0o444)
        made.append(path)
        if not os.access(path, os.W_OK):
            return
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                             capture_output=True).returncode != 0:
            pytest.skip("cannot make a file read-only for this user here")
        if os.access(path, os.W_OK):
            pytest.skip("cannot make a file read-only for this user here")

    yield make
    for path in made:
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_sqlite_store_is_one_line_quickly(trained: Path, tmp_path: Path, read_only) -> None:
    run = copy_run(trained, tmp_path)
    uri = f"sqlite:///{tmp_path / 'ro.db'}"
    first = track(str(run), "--to", uri, "--experiment", "ro")
    assert first.exit_code == 0, first.output
    shutil.move(str(run), str(tmp_path / "renamed"))  # another run for the store (same uuid: re-keyed)
    summary = json.loads((tmp_path / "renamed" / "summary.json").read_text())
    summary["run_uuid"] = "0" * 32
    (tmp_path / "renamed" / "summary.json").write_text(json.dumps(summary))
    read_only(tmp_path / "ro.db")
    before = (tmp_path / "ro.db").read_bytes()
    start = time.monotonic()
    line = one_error_line(track(str(tmp_path / "renamed"), "--to", uri, "--experiment", "ro"))
    assert time.monotonic() - start < 5
    assert line == (f"error: --to: {tmp_path / 'ro.db'}: the MLflow database is read-only; "
                    "give one rnnlab can write")
    assert (tmp_path / "ro.db").read_bytes() == before


def test_a_new_store_in_a_read_only_folder_is_one_line(trained: Path, tmp_path: Path, read_only) -> None:
    run = copy_run(trained, tmp_path)
    (tmp_path / "locked").mkdir()
    read_only(tmp_path / "locked")
    line = one_error_line(track(str(run), "--to", f"sqlite:///{tmp_path / 'locked' / 'new' / 'mlflow.db'}"))
    assert f"cannot write in {tmp_path / 'locked'} (read-only)" in line
    assert not (tmp_path / "locked" / "new").exists()


@pytest.fixture
def http_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's HTTP settings unset (as for a user who set none), restored afterwards."""
    for key in HTTP_BOUNDS:
        monkeypatch.setenv(key, "0")
        monkeypatch.delenv(key)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is: nothing listens there


def test_an_unreachable_server_fails_in_seconds_saying_the_bounds(trained: Path, tmp_path: Path,
                                                                   http_defaults: None) -> None:
    run = copy_run(trained, tmp_path)
    uri = f"http://127.0.0.1:{closed_port()}"
    import mlflow.tracking  # noqa: F401 - the import's time is not the server's

    start = time.monotonic()
    line = one_error_line(track(str(run), "--to", uri))
    assert time.monotonic() - start < 15  # MLflow's own defaults: minutes of retries
    assert line.startswith(f"error: --to: cannot open MLflow store {uri} (2 retries, 10 s a request; "
                           "set MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT to wait "
                           "longer): ")
    assert "cannot connect" in line


# ----------------------------------------------------------------------------- what is logged, once


def test_a_renamed_or_copied_run_is_recognised_by_its_run_uuid(trained: Path, store: str,
                                                               tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path)
    assert track(str(run), "--to", store, "--experiment", "dedup").exit_code == 0
    renamed = tmp_path / "renamed-run"
    run.rename(renamed)
    again = track(str(renamed), "--to", store, "--experiment", "dedup")
    assert again.exit_code == 0 and "already tracked" in again.output
    copied = copy_run(renamed, tmp_path / "elsewhere")
    assert "already tracked" in track(str(copied), "--to", store, "--experiment", "dedup").output
    (found,) = logged(store, "dedup")
    summary = json.loads((renamed / "summary.json").read_text())
    assert found.data.tags["rnnlab.run_uuid"] == summary["run_uuid"]
    assert found.data.tags["rnnlab.run_id"] == summary["run_id"] == trained.name


def test_a_run_directory_with_quotes_in_its_name(trained: Path, store: str, tmp_path: Path) -> None:
    """Runs from before identities are known by their directory's name, which goes into a filter."""
    for name in ("it's", 'say "hi"', "it's \"both\""):
        run = copy_run(trained, tmp_path, name)
        summary = json.loads((run / "summary.json").read_text())
        del summary["run_id"], summary["run_uuid"]
        (run / "summary.json").write_text(json.dumps(summary))
        first = track(str(run), "--to", store, "--experiment", "quotes")
        assert first.exit_code == 0 and "already tracked" not in first.output, first.output
        again = track(str(run), "--to", store, "--experiment", "quotes")
        assert again.exit_code == 0 and "already tracked" in again.output, again.output
    found = logged(store, "quotes")
    names = sorted(r.data.tags["rnnlab.run_id"] for r in found)
    assert names == sorted(["it's", 'say "hi"', "it's \"both\""])


def test_store_search_matches_values_with_quotes_exactly(store: str) -> None:
    s = Store(store, "search", None, "--to")
    values = ["it's", 'a "b"', "it's \"c\"", "plain"]
    ids = {v: s.create(v, {"k": v}) for v in values}
    for value in values:
        assert [r.info.run_id for r in s.search("k", value)] == [ids[value]]
    assert s.search("k", "it") == []


def test_only_the_options_in_effect_are_params(trained: Path, store: str, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path)
    assert track(str(run), "--to", store, "--experiment", "params").exit_code == 0
    (found,) = logged(store, "params")
    params = found.data.params
    assert params["train.optimizer"] == "sgd" and params["train.momentum"] == "0.9"
    assert params["train.scheduler.name"] == "cosine" and params["train.scheduler.min_lr_ratio"] == "0.1"
    assert "train.scheduler.warmup_steps" in params  # cosine reads it (null: no warm-up)
    for other in ("gamma", "step_size", "factor", "patience", "pct_start", "div_factor", "final_div_factor"):
        assert f"train.scheduler.{other}" not in params


def test_in_effect_keeps_every_key_of_an_unknown_plugin_scheduler() -> None:
    config = {"train": {"optimizer": "adam", "momentum": 0.9, "weight_decay": 0.0,
                        "scheduler": {"name": "not-registered", "gamma": 0.5}}}
    assert in_effect(config) == {"train.optimizer": "adam", "train.weight_decay": 0.0,
                                 "train.scheduler.name": "not-registered", "train.scheduler.gamma": 0.5}


def test_the_model_is_logged_with_its_checkpoint(trained: Path, store: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(trained, tmp_path)
    config = (run / "config.yaml").read_text().replace("mlflow: null", "mlflow: {log_checkpoint: true}")
    assert "log_checkpoint: true" in config
    (run / "config.yaml").write_text(config)
    monkeypatch.setitem(sys.modules, "mlflow.pytorch", None)  # as mlflow-skinny: no pytorch flavour
    result = track(str(run), "--to", store, "--experiment", "model")
    assert result.exit_code == 0, result.output
    assert "model logged as checkpoints/best.pt only: this MLflow has no pytorch flavour" in result.output
    (found,) = logged(store, "model")
    assert found.data.tags["rnnlab.model"].startswith("model logged as checkpoints/best.pt only")
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    assert [Path(f.path).name for f in client.list_artifacts(found.info.run_id, "checkpoints")] == ["best.pt"]


def test_the_model_in_the_pytorch_flavour_where_mlflow_has_it(trained: Path, store: str,
                                                              tmp_path: Path) -> None:
    try:
        import mlflow.pytorch  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"this MLflow has no pytorch flavour: {exc}")
    import torch

    run = copy_run(trained, tmp_path)
    config = (run / "config.yaml").read_text().replace("mlflow: null", "mlflow: {log_checkpoint: true}")
    (run / "config.yaml").write_text(config)
    result = track(str(run), "--to", store, "--experiment", "flavour")
    assert result.exit_code == 0, result.output
    assert "model logged as runs:/<run id>/model (mlflow.pytorch)" in result.output
    (found,) = logged(store, "flavour")
    mlflow.set_tracking_uri(store)
    try:
        model = mlflow.pytorch.load_model(f"runs:/{found.info.run_id}/model")
    finally:
        mlflow.set_tracking_uri(None)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=False)["model"]
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())


def test_track_help_names_the_real_default_store() -> None:
    result = runner.invoke(app, ["track", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.replace("\u2502", " ").split())  # rich's box borders out
    assert "sqlite:///<runs dir>/mlflow.db" in text and "mlruns" not in text


def test_a_live_run_logs_its_model_when_asked(store: str, tmp_path: Path) -> None:
    raw = deep_merge(SINE_TINY, {"train": {"epochs": 1}, "logging": {
        "mlflow": {"tracking_uri": store, "experiment": "live-model", "log_checkpoint": True}}})
    run = train_run(build_experiment(raw), tmp_path, Reporter(quiet=True))
    (found,) = logged(store, "live-model")
    assert found.data.tags["rnnlab.run_uuid"] == json.loads((run / "summary.json").read_text())["run_uuid"]
    assert found.data.tags["rnnlab.model"].startswith("model logged as ")
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    names = {Path(f.path).name for f in client.list_artifacts(found.info.run_id)}
    assert {"checkpoints", "config.yaml", "summary.json"} <= names
    if "(mlflow.pytorch)" in found.data.tags["rnnlab.model"]:  # MLflow 3: a logged model of the run
        mlflow.set_tracking_uri(store)
        try:
            assert mlflow.pytorch.load_model(f"runs:/{found.info.run_id}/model") is not None
        finally:
            mlflow.set_tracking_uri(None)
    assert "train.momentum" not in found.data.params  # adam: sgd's option is not in effect


@pytest.mark.parametrize("form", ["directory", "file"])
def test_a_directory_store_opens_under_mlflow_3(trained: Path, tmp_path: Path, form: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The help lists a directory and file://PATH as stores; MLflow >= 3.7 refuses its file store
    unless MLFLOW_ALLOW_FILE_STORE is set (found by benchmarks/fuzz.py: every such `track` was refused)."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    where = tmp_path / "mlruns"
    uri = str(where) if form == "directory" else where.as_uri()
    result = track(str(copy_run(trained, tmp_path)), "--to", uri)
    assert result.exit_code == 0, result.output
    assert any(p.is_dir() and p.name.isdigit() for p in where.iterdir())
