from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnlab.cli import app

from .conftest import REPO

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.stderr if hasattr(result, "stderr") else result.output
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_prints_run_dir_last_and_eval_matches(write_config, runs_dir: Path) -> None:
    result = cli("train", str(write_config()), "--runs-dir", str(runs_dir), "--quiet")
    assert result.exit_code == 0, result.output
    out = result.stdout.strip().splitlines()
    run = Path(out[-1])
    assert run.parent == runs_dir and run.is_dir()
    assert out[0].startswith("test ")  # quiet: final metrics then the run directory
    summary = json.loads((run / "summary.json").read_text())

    ev = cli("eval", str(run), "--json")
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["metrics"] == summary["test"]
    text = cli("eval", str(run))
    for key, value in summary["test"].items():
        assert f"test {key} {value!r}" in text.stdout


def test_plain_progress_lines_when_not_a_terminal(write_config, runs_dir: Path) -> None:
    result = cli("train", str(write_config({"train": {"log_every": 5}})), "--runs-dir", str(runs_dir))
    assert result.exit_code == 0
    assert "epoch 1/3 step 5/" in result.stdout and "epoch 3/3 train_loss=" in result.stdout


def test_set_overrides_and_name(write_config, runs_dir: Path) -> None:
    result = cli("train", str(write_config()), "--runs-dir", str(runs_dir), "-q",
                 "--set", "model.name=gru", "--set", "train.epochs=1", "--name", "mine")
    assert result.exit_code == 0, result.output
    run = Path(result.stdout.strip().splitlines()[-1])
    assert run.name.endswith("_mine")
    text = (run / "config.yaml").read_text()
    assert "name: gru" in text and "epochs: 1" in text


@pytest.mark.parametrize("extra,fragments", [
    ({"model": {"hiden_size": 8}}, ["model.hiden_size", "did you mean 'hidden_size'"]),
    ({"model": {"hidden_size": -3}}, ["model.hidden_size: must be > 0, got -3"]),
    ({"train": {"device": "tpu"}}, ["train.device"]),
    ({"task": {"name": "sin"}}, ["unknown task 'sin'", "did you mean 'sine'"]),
    ({"task": {"mode": "rollout", "horizon": 1}}, ["task.horizon"]),
    ({"model": {"bidirectional": True}}, ["model.bidirectional"]),
])
def test_bad_configs_exit_2_and_write_nothing(write_config, runs_dir: Path, extra, fragments) -> None:
    result = cli("train", str(write_config(extra)), "--runs-dir", str(runs_dir))
    assert_user_error(result, *fragments)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_missing_config_file(tmp_path: Path) -> None:
    assert_user_error(cli("train", str(tmp_path / "missing.yaml"), "--runs-dir", str(tmp_path / "r")),
                      "missing.yaml: config file not found")
    assert not (tmp_path / "r").exists()


def test_bad_override_and_name(write_config, runs_dir: Path) -> None:
    assert_user_error(cli("train", str(write_config()), "--set", "train.lr"), "--set")
    assert_user_error(cli("train", str(write_config()), "--set", "train.lr=-1"), "train.lr: must be > 0")
    assert_user_error(cli("train", str(write_config()), "--name", "../escape"), "--name")


def test_eval_errors(tmp_path: Path) -> None:
    assert_user_error(cli("eval", str(tmp_path / "nope")), "run directory not found")
    (tmp_path / "empty").mkdir()
    assert_user_error(cli("eval", str(tmp_path / "empty")), "config.yaml is missing")
    assert_user_error(cli("eval", str(tmp_path), "--split", "train"), "--split")


def test_list_names_everything() -> None:
    result = cli("list")
    assert result.exit_code == 0
    for word in ("sine", "lstm", "gru", "rnn", "mlp", "seq2seq", "adamw", "onecycle"):
        assert word in result.stdout


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "train", str(tmp_path / "x.yaml")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'x.yaml'}: config file not found"
    assert "Traceback" not in proc.stderr
