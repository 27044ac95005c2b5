"""Small things users expect: `rnnlab config` (the resolved YAML that `rnnlab train` saves), shell
completion, the plateau scheduler and cosine warm-up."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.config.loading import build_experiment
from rnnlab.rundir import files as runs
from rnnlab.training.optim import make_scheduler, warmup_cosine

from .conftest import CONFIGS, SINE_TINY, deep_merge
from .mnist_data import write_tiny_mnist
from .test_cli import assert_user_error

runner = CliRunner()


def test_config_prints_the_yaml_train_accepts_and_saves(tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path / "mnist", n_train=100, n_test=30)
    sets = ["train.lr=1e-3", f"data.root={tmp_path / 'mnist'}", "data.download=false", "train.epochs=1",
            "model.hidden_size=8", "task.val_size=20", "train.threads=1", "logging.plots=false"]
    args = [a for s in sets for a in ("--set", s)]
    printed = runner.invoke(app, ["config", str(CONFIGS / "lstm_mnist.yaml"), *args])
    assert printed.exit_code == 0, printed.output
    resolved = yaml.safe_load(printed.output)
    assert resolved["train"]["lr"] == 1e-3 and resolved["name"] == "lstm_mnist"
    assert resolved["train"]["scheduler"]["name"] == "onecycle"  # from the file, written out in full
    assert "warmup_steps" in resolved["train"]["scheduler"]  # every default is there
    config = tmp_path / "resolved.yaml"
    config.write_text(printed.output)
    trained = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert trained.exit_code == 0, trained.output
    run = Path(trained.output.strip().splitlines()[-1])
    assert (run / runs.CONFIG).read_text() == printed.output


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["config", str(CONFIGS / "lstm_mnist.yaml"), "--set", "train.lr=-1"])
    assert_user_error(bad, "train.lr: must be > 0")
    assert_user_error(runner.invoke(app, ["config", str(tmp_path / "nope.yaml")]), "config file not found")


def test_shell_completion_is_offered() -> None:
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.output and "--show-completion" in result.output


def optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_cosine_warmup_rises_linearly_then_decays_to_the_floor() -> None:
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {
        "lr": 0.1, "scheduler": {"name": "cosine", "warmup_steps": 4, "min_lr_ratio": 0.1}}}))
    opt = optimizer()
    sched, per_step = make_scheduler(exp.train, opt, total_steps=20)
    assert per_step
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and lrs[4] == pytest.approx(0.1)
    assert warmup_cosine(20, 4, 20, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(12, 4, 20, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_plateau_lowers_lr_when_the_validation_metric_stalls() -> None:
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {
        "lr": 0.1, "scheduler": {"name": "plateau", "factor": 0.5, "patience": 1}}}))
    for mode, values in (("min", [1.0, 0.9, 0.95, 0.95, 0.95]), ("max", [0.5, 0.6, 0.55, 0.55, 0.55])):
        opt = optimizer()
        sched, per_step = make_scheduler(exp.train, opt, 10, mode)
        assert not per_step
        lrs = []
        for v in values:
            sched.step(v)
            lrs.append(opt.param_groups[0]["lr"])
        assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05]), mode


def test_plateau_trains_and_records_each_epochs_lr(tmp_path: Path) -> None:
    from rnnlab.common.console import Reporter
    from rnnlab.execution.lifecycle import train_run

    exp = build_experiment(deep_merge(SINE_TINY, {"train": {
        "epochs": 4, "scheduler": {"name": "plateau", "factor": 0.5, "patience": 0}}}))
    run = train_run(exp, tmp_path, Reporter(quiet=True))
    rows = runs.read_jsonl(run / runs.METRICS)
    best = math.inf
    for row, following in zip(rows, rows[1:]):
        improved = row["val_mse"] < best * (1 - 1e-4)
        best = min(best, row["val_mse"])
        assert following["lr"] == pytest.approx(row["lr"] * (1.0 if improved else 0.5))


def test_scheduler_options_are_checked() -> None:
    from rnnlab.errors import ConfigError

    with pytest.raises(ConfigError, match="does not apply to scheduler 'step'"):
        build_experiment(deep_merge(SINE_TINY, {"train": {"scheduler": {"name": "step", "warmup_steps": 3}}}))
    with pytest.raises(ConfigError, match="factor: must be < 1"):
        build_experiment(deep_merge(SINE_TINY, {"train": {"scheduler": {"name": "plateau", "factor": 2}}}))
