from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs
from rnnlab.training.build import build
from rnnlab.training.evaluation import evaluate_run
from rnnlab.training.precision import Precision, native_bf16
from rnnlab.training.trainer import Trainer

from .conftest import SINE_TINY

runner = CliRunner()
CPU = torch.device("cpu")


def train(path: Path, runs_dir: Path, *overrides: str) -> Path:
    return train_run(load_experiment(path, list(overrides)), runs_dir, Reporter(quiet=True))


@pytest.mark.skipif(not native_bf16(), reason="needs a CPU with native bfloat16 (AVX512-BF16 or AMX): "
                    "oneDNN has no bf16 LSTM elsewhere (the refusal is tested in test_precision.py)")
def test_bf16_autocasts_the_training_step_on_cpu_and_eval_stays_fp32(write_config, runs_dir: Path) -> None:
    amp = Precision("bf16", CPU)
    lstm = torch.nn.LSTM(1, 4, batch_first=True)
    with amp.autocast():
        out, _ = lstm(torch.randn(2, 5, 1))
    assert out.dtype == torch.bfloat16

    run = train(write_config(), runs_dir, "train.precision=bf16")
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert summary["status"] == "completed" and summary["precision"] == "bf16"
    ref = runs.read_jsonl(train(write_config(), runs_dir) / runs.METRICS)
    rows = runs.read_jsonl(run / runs.METRICS)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # it learns
    assert rows[0]["train_loss"] != ref[0]["train_loss"]  # in bf16: not the fp32 numbers
    assert abs(rows[0]["train_loss"] - ref[0]["train_loss"]) < 0.05 * ref[0]["train_loss"]
    assert evaluate_run(run) == summary["test"]  # evaluation runs in fp32: eval reproduces it


def test_fp16_on_cpu_is_refused_before_anything_is_written(write_config, runs_dir: Path) -> None:
    result = runner.invoke(app, ["train", str(write_config()), "--runs-dir", str(runs_dir),
                                 "--set", "train.precision=fp16"])
    assert result.exit_code == 2
    assert result.output.startswith("error: train.precision: fp16 needs a CUDA device")
    assert not runs_dir.exists()
    result = runner.invoke(app, ["train", str(write_config()), "--set", "train.precision=fp8"])
    assert result.exit_code == 2 and "train.precision: must be one of" in result.output


def test_fp16_grad_scaler_scales_unscales_and_skips_overflowing_steps() -> None:
    """The scaler mechanics on CPU (fp16 training itself needs CUDA, see check_precision)."""
    amp = Precision("fp16", CPU)
    assert amp.scaler is not None
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1)
    scale = amp.scaler.get_scale()
    amp.backward((param * 2).sum())
    assert torch.allclose(param.grad, torch.full((3,), 2 * scale))  # scaled loss
    amp.unscale_(opt)
    assert torch.allclose(param.grad, torch.full((3,), 2.0))  # clipping sees true gradients
    amp.step(opt)
    assert torch.allclose(param.detach(), torch.full((3,), 0.8))
    opt.zero_grad()
    amp.backward((param * float("inf")).sum())  # overflow: the step is skipped, the scale lowered
    amp.unscale_(opt)
    amp.step(opt)
    assert torch.allclose(param.detach(), torch.full((3,), 0.8))
    assert amp.scaler.get_scale() < scale
    norms = torch.tensor([1.0, float("inf"), 3.0], dtype=torch.float64)
    assert amp.taken(norms).tolist() == [1.0, 3.0]
    assert math.isnan(amp.taken(torch.tensor([float("inf")])).item())
    assert Precision("bf16", CPU).taken(norms) is norms


def test_trainer_epoch_under_fp16_scaler(write_config) -> None:
    """The trainer's fp16 path end to end on CPU with an MLP (CPU fp16 autocast covers Linear;
    the device check that refuses fp16 on CPU is bypassed by building the Trainer directly)."""
    base = {**SINE_TINY, "model": {"name": "mlp", "hidden_sizes": [8]}}
    exp = load_experiment(write_config({"train": {"precision": "fp16", "epochs": 1}}, base=base))
    task, model = build(exp, CPU)
    trainer = Trainer(exp, task, model, Path("."), Reporter(quiet=True), CPU, 1)
    before = [p.detach().clone() for p in model.parameters()]
    row = trainer.train_epoch()
    assert math.isfinite(row["train_loss"]) and row["grad_norm_max"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert trainer.checkpoint()["scaler"]["scale"] > 0  # the scaler state is saved in last.pt


def test_tensorboard_event_files_with_epoch_scalars_and_step_norms(write_config, runs_dir: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(write_config({"logging": {"tensorboard": True}}), runs_dir)
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "val/mse", "lr", "grad/norm_mean", "grad/clip_frac", "grad/norm_step",
            "speed/samples_per_s"} <= tags
    rows = runs.read_jsonl(run / runs.METRICS)
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx([r["train_loss"] for r in rows])
    steps = [e.step for e in acc.Scalars("grad/norm_step")]
    assert steps == list(range(1, rows[-1]["step"] + 1))  # one norm per optimizer step


def test_no_tensorboard_files_by_default_and_a_clear_error_without_the_package(
        write_config, runs_dir: Path, monkeypatch) -> None:
    run = train(write_config({"train": {"epochs": 1}}), runs_dir)
    assert not (run / "tensorboard").exists()
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    result = runner.invoke(app, ["train", str(write_config({"logging": {"tensorboard": True}})),
                                 "--runs-dir", str(runs_dir / "new")])
    assert result.exit_code == 2
    assert "logging.tensorboard: needs the 'tensorboard' package" in result.output
    assert not (runs_dir / "new").exists()
