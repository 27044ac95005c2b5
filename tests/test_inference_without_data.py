"""Inference from the run directory alone (issue 23 item 6): ``Run.model()``, ``predict``,
``generate``, ``forecast`` and ``export`` work with ``RNNLAB_DATA`` unset and the data folder moved
away, and give what they gave before the move; ``eval`` says in one line that the data is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rnnlab.api import Run
from rnnlab.cli import app

from .mnist_data import write_tiny_mnist
from .test_charlm import WORDS
from .test_series import toy

runner = CliRunner()
TINY = ["--set", "train.threads=1", "--set", "train.epochs=1", "--set", "train.steps_per_epoch=2",
        "--set", "logging.plots=false", "--quiet"]


def train(tmp: Path, config: dict[str, Any]) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp / "runs"), *TINY])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def model_outputs(run: Path, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out, _ = Run(run).model()(x)
    return out


def export(run: Path, out: Path) -> dict[str, Any]:
    ok(["export", str(run), "--format", "torchscript", "--out", str(out)])
    return json.loads(out.with_name(out.name + ".json").read_text())


def move_data_away(data: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.move(str(data), str(tmp / "elsewhere"))
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "empty_cache"))  # no MNIST in the user's cache


def check_export_and_model(run: Path, tmp: Path, x: torch.Tensor, before: tuple[torch.Tensor, dict]) -> None:
    out, sidecar = before
    assert torch.equal(model_outputs(run, x), out)
    after = export(run, tmp / "after.pt")
    assert after["max_abs_diff"] == sidecar["max_abs_diff"] and after["inputs"] == sidecar["inputs"]
    assert after["tolerance"] == sidecar["tolerance"] and after["outputs"] == sidecar["outputs"]
    assert isinstance(torch.jit.load(str(tmp / "after.pt")), torch.jit.ScriptModule)


def before_move(run: Path, tmp: Path, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    return model_outputs(run, x), export(run, tmp / "before.pt")


def eval_says_data_missing(run: Path) -> str:
    result = runner.invoke(app, ["eval", str(run)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    write_tiny_mnist(data, n_train=120, n_test=40)
    monkeypatch.setenv("RNNLAB_DATA", str(data))
    run = train(tmp_path, {"name": "lstm_mnist", "task": {"name": "mnist", "val_size": 20},
                           "model": {"name": "lstm", "hidden_size": 8},
                           "data": {"download": False}, "train": {"batch_size": 16, "seed": 0}})
    x = torch.randn(3, 28, 28)
    before = before_move(run, tmp_path, x)
    move_data_away(data, tmp_path, monkeypatch)
    check_export_and_model(run, tmp_path, x, before)
    assert "MNIST not found" in eval_says_data_missing(run)


def test_sentiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "reviews.csv").write_text("text,label\n" + "great fun film,good\nawful dull film,bad\n" * 30)
    monkeypatch.setenv("RNNLAB_DATA", str(data))
    run = train(tmp_path, {"task": {"name": "sentiment"}, "data": {"path": str(data / "reviews.csv")},
                           "model": {"name": "gru", "embedding_dim": 8, "hidden_size": 8},
                           "train": {"batch_size": 16, "seed": 0}})
    x = torch.tensor([[2, 3, 4], [4, 3, 2]])
    texts = ["great film", "awful dull", "never seen words"]
    predicted = ok(["predict", str(run), *texts, "--json"])
    before = before_move(run, tmp_path, x)
    move_data_away(data, tmp_path, monkeypatch)
    assert ok(["predict", str(run), *texts, "--json"]) == predicted
    check_export_and_model(run, tmp_path, x, before)
    eval_says_data_missing(run)


def test_charlm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "corpus.txt").write_text(WORDS * 20)
    monkeypatch.setenv("RNNLAB_DATA", str(data))
    run = train(tmp_path, {"name": "tiny_charlm", "data": {"path": str(data / "corpus.txt")},
                           "task": {"name": "charlm", "bptt": 16, "samples": 1, "sample_length": 20},
                           "model": {"name": "lstm", "hidden_size": 16, "embedding_dim": 8},
                           "train": {"batch_size": 8, "seed": 0}})
    x = torch.tensor([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])
    args = ["generate", str(run), "--length", "30", "--seed", "3"]
    generated = ok(args)
    before = before_move(run, tmp_path, x)
    move_data_away(data, tmp_path, monkeypatch)
    assert ok(args) == generated
    check_export_and_model(run, tmp_path, x, before)
    eval_says_data_missing(run)


def test_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    toy(data, 300)
    recent = toy(tmp_path, 40, "recent.csv")
    monkeypatch.setenv("RNNLAB_DATA", str(data))
    run = train(tmp_path, {"task": {"name": "series", "lookback": 24, "horizon": 6},
                           "data": {"path": str(data / "toy.csv"), "time_column": "date"},
                           "model": {"name": "lstm", "hidden_size": 8},
                           "train": {"batch_size": 32, "seed": 0}})
    x = torch.randn(2, 24, 2)

    def forecast(name: str) -> str:
        ok(["forecast", str(run), "--file", str(recent), "--out", str(tmp_path / name)])
        return (tmp_path / name).read_text()

    forecasted = forecast("before.csv")
    before = before_move(run, tmp_path, x)
    move_data_away(data, tmp_path, monkeypatch)
    assert forecast("after.csv") == forecasted
    check_export_and_model(run, tmp_path, x, before)
    eval_says_data_missing(run)


@pytest.mark.parametrize("task", [{"name": "sine"}, {"name": "adding", "length": 20},
                                  {"name": "copy", "length": 20}])
def test_generated_data_tasks_need_no_data_folder(task: dict[str, Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "nowhere"))
    run = train(tmp_path, {"task": task, "model": {"name": "gru", "hidden_size": 8},
                           "train": {"batch_size": 16, "seed": 0}})
    saved = torch.load(run / "sample_inputs.pt", weights_only=True)
    before = before_move(run, tmp_path, saved[:4])
    monkeypatch.delenv("RNNLAB_DATA")
    check_export_and_model(run, tmp_path, saved[:4], before)


def test_a_run_without_saved_inputs_exports_from_its_data(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A run written before the sample inputs were saved: export draws them from the data as
    before; with the data gone that is one line, and the model itself still loads."""
    data = tmp_path / "data"
    write_tiny_mnist(data, n_train=60, n_test=20)
    monkeypatch.setenv("RNNLAB_DATA", str(data))
    run = train(tmp_path, {"task": {"name": "mnist", "val_size": 10}, "data": {"download": False},
                           "model": {"name": "gru", "hidden_size": 8}, "train": {"batch_size": 16}})
    x = torch.load(run / "sample_inputs.pt", weights_only=True)
    (run / "sample_inputs.pt").unlink()
    before = export(run, tmp_path / "old.pt")
    (run / "sample_inputs.pt").write_bytes(b"")  # unreadable: the same as absent
    assert export(run, tmp_path / "again.pt")["max_abs_diff"] == before["max_abs_diff"]
    (run / "sample_inputs.pt").unlink()
    out = model_outputs(run, x[:2])
    move_data_away(data, tmp_path, monkeypatch)
    assert torch.equal(model_outputs(run, x[:2]), out)
    result = runner.invoke(app, ["export", str(run), "--format", "torchscript",
                                 "--out", str(tmp_path / "x.pt")])
    lines = [line for line in result.stderr.splitlines() if line]
    assert result.exit_code != 0 and len(lines) == 1 and "MNIST not found" in lines[0], result.output


def test_the_rebuilt_task_is_checked_against_the_saved_spec(tmp_path: Path) -> None:
    run = train(tmp_path, {"task": {"name": "sine"}, "model": {"name": "gru", "hidden_size": 8}})
    spec = json.loads((run / "spec.json").read_text())
    assert spec["input_size"] == 1 and spec["metric"] == "mse"
    Run(run).model()
    (run / "spec.json").write_text(json.dumps({**spec, "input_size": 3}))
    result = runner.invoke(app, ["export", str(run), "--format", "torchscript",
                                 "--out", str(tmp_path / "m.pt")])
    lines = [line for line in result.stderr.splitlines() if line]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "does not match the spec it was trained with (input_size: saved 3, rebuilt 1)" in lines[0]
    (run / "spec.json").write_text("{")
    assert "corrupted" in runner.invoke(app, ["export", str(run), "--format", "torchscript"]).stderr
