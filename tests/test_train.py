from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs
from rnnlab.training.evaluation import evaluate_run
from rnnlab.training.state import clip_grad_norm

from .conftest import SINE_TINY


def train(path: Path, runs_dir: Path, *overrides: str) -> Path:
    exp = load_experiment(path, list(overrides))
    return train_run(exp, runs_dir, Reporter(quiet=True))


FAMILIES = {
    "mlp": {"model": {"name": "mlp", "hidden_sizes": [16]}},
    "rnn": {"model": {"name": "rnn", "hidden_size": 8}},
    "rnn_relu": {"model": {"name": "rnn", "hidden_size": 8, "nonlinearity": "relu"}},
    "lstm": {"model": {"name": "lstm", "hidden_size": 8, "num_layers": 2, "dropout": 0.1}},
    "gru": {"model": {"name": "gru", "hidden_size": 8, "init": "orthogonal"}},
    "gru_seq2seq_mode": {"task": {"mode": "seq2seq", "seq_len": 50, "stride": 10},
                         "model": {"name": "gru", "hidden_size": 8}},
    "lstm_rollout": {"task": {"mode": "rollout", "window": 8, "horizon": 4},
                     "model": {"name": "lstm", "hidden_size": 8}},
    "mlp_rollout": {"task": {"mode": "rollout", "window": 8, "horizon": 4},
                    "model": {"name": "mlp", "hidden_sizes": [8], "init": "normal"}},
    "seq2seq": {"task": {"mode": "rollout", "window": 8, "horizon": 4},
                "model": {"name": "seq2seq", "cell": "gru", "hidden_size": 8}},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_learns_and_writes_its_run(family: str, write_config, runs_dir: Path) -> None:
    extra = dict(FAMILIES[family])
    extra["train"] = {"epochs": 4}
    extra["logging"] = {"plots": family in ("lstm", "lstm_rollout")}
    base = {**SINE_TINY, "model": extra.pop("model")}
    run = train(write_config(extra, base), runs_dir)
    rows = runs.read_jsonl(run / runs.METRICS)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    for key in ("val_mse", "val_mse_over_noise", "lr", "grad_norm_mean", "grad_norm_max",
                "clip_frac", "seconds", "samples_per_s"):
        assert key in rows[0]
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert summary["status"] == "completed"
    assert set(summary["test"]) >= {"mse", "mse_clean", "mse_over_noise"}
    assert summary["best_epoch"] in (1, 2, 3, 4)
    assert summary["versions"]["torch"] == torch.__version__
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "checkpoints" / "last.pt").is_file()
    assert (run / runs.CONFIG).is_file()
    if extra["logging"]["plots"]:
        pngs = sorted(p.name for p in (run / "plots").glob("*.png"))
        assert "learning_curves.png" in pngs and "forecast.png" in pngs
        for png in (run / "plots").glob("*.png"):
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_reproduces_summary(write_config, runs_dir: Path) -> None:
    run = train(write_config(), runs_dir)
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert evaluate_run(run, "test") == summary["test"]
    assert evaluate_run(run, "val") == summary["best_val"]


def test_same_seed_same_metrics(write_config, runs_dir: Path) -> None:
    path = write_config({"model": {"dropout": 0.2, "num_layers": 2}})
    a = runs.read_jsonl(train(path, runs_dir) / runs.METRICS)
    b = runs.read_jsonl(train(path, runs_dir) / runs.METRICS)
    drop = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")
    strip = [{k: v for k, v in row.items() if k not in drop} for row in a]
    assert strip == [{k: v for k, v in row.items() if k not in drop} for row in b]
    c = runs.read_jsonl(train(path, runs_dir, "train.seed=1") / runs.METRICS)
    assert c[0]["train_loss"] != a[0]["train_loss"]


def test_run_ids_never_collide(write_config, runs_dir: Path) -> None:
    path = write_config({"train": {"epochs": 1}})
    first, second = train(path, runs_dir), train(path, runs_dir)
    assert first != second and first.name.endswith("_tiny") and first.parent == second.parent


def test_early_stopping_and_clipping_stats(write_config, runs_dir: Path) -> None:
    run = train(write_config({"train": {"epochs": 30, "lr": 0.5, "clip_grad_norm": 0.01,
                                         "early_stopping": 2}}), runs_dir)
    rows = runs.read_jsonl(run / runs.METRICS)
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert len(rows) < 30 and summary["stopped_early"]
    assert all(r["clip_frac"] == 1.0 for r in rows)  # every step's norm exceeds 0.01
    assert rows[0]["grad_norm_max"] >= rows[0]["grad_norm_mean"] > 0.01


def test_schedulers_change_lr(write_config, runs_dir: Path) -> None:
    for sched in ("step", "cosine", "onecycle"):
        run = train(write_config({"train": {"epochs": 3, "scheduler": sched}}), runs_dir)
        lrs = [r["lr"] for r in runs.read_jsonl(run / runs.METRICS)]
        assert len(set(lrs)) > 1, sched


def test_steps_per_epoch(write_config, runs_dir: Path) -> None:
    run = train(write_config({"train": {"epochs": 2, "steps_per_epoch": 3}}), runs_dir)
    assert [r["steps"] for r in runs.read_jsonl(run / runs.METRICS)] == [3, 3]


def test_clip_grad_norm_matches_torch_bit_for_bit() -> None:
    torch.manual_seed(0)
    for max_norm in (None, 1.0, 1e6):
        ours, ref = [torch.zeros(s, requires_grad=True) for s in ((3, 4), (5,), (2, 2))], []
        for p in ours:
            p.grad = torch.randn(p.shape) * 3
            ref.append(p.detach().clone().requires_grad_())
            ref[-1].grad = p.grad.clone()
        norm = clip_grad_norm(ours, max_norm)
        expected = torch.nn.utils.clip_grad_norm_(ref, max_norm or float("inf"))
        assert torch.equal(norm, expected)
        assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, ref))
        if max_norm == 1.0:  # clipped to the threshold
            assert abs(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours])) - 1.0) < 1e-5
