"""TensorBoard as Lightning's logger writes it: per-step training loss, test and best validation
scalars, and the hparams (the options in effect) with those metrics in the HPARAMS tab; read back
with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs

pytest.importorskip("tensorboard")


def events(run: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return acc


def hparams_of(acc: Any) -> tuple[dict[str, Any], list[str]]:
    """(hyperparameter values of the session, metric tags the experiment declares)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    values: dict[str, Any] = {}
    metrics: list[str] = []
    for raw in content.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        if data.HasField("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                values[key] = getattr(value, value.WhichOneof("kind"))
        if data.HasField("experiment"):
            metrics += [m.name.tag for m in data.experiment.metric_infos]
    return values, metrics


def test_step_losses_test_scalars_and_hparams_of_the_options_in_effect(write_config, tmp_path: Path) -> None:
    config = write_config({"logging": {"tensorboard": True},
                           "train": {"optimizer": "sgd", "scheduler": {"name": "step", "gamma": 0.5},
                                     "steps_per_epoch": 4}})
    run = train_run(load_experiment(config, []), tmp_path / "runs", Reporter(quiet=True))
    acc = events(run)
    rows = runs.read_jsonl(run / runs.METRICS)
    summary = json.loads((run / runs.SUMMARY).read_text())

    # a training loss for every optimizer step, around the epoch's mean
    losses = acc.Scalars("train/loss_step")
    assert [e.step for e in losses] == list(range(1, rows[-1]["step"] + 1)) == list(range(1, 13))
    first = [e.value for e in losses[:4]]
    mean = rows[0]["train_loss"]
    assert min(first) <= mean * (1 + 1e-6) and max(first) >= mean * (1 - 1e-6)

    # the test split's metrics and the best epoch's validation metrics, as the summary has them
    for name, value in summary["test"].items():
        (point,) = acc.Scalars(f"test/{name}")
        assert point.value == pytest.approx(value, rel=1e-6) and point.step == summary["steps"]
    assert acc.Scalars("best_val/mse")[0].value == pytest.approx(summary["best_val"]["mse"], rel=1e-6)

    # the HPARAMS tab: the options in effect (sgd's momentum, step's gamma; not cosine's or
    # onecycle's options), with the final metrics
    values, metrics = hparams_of(acc)
    assert values["train.lr"] == pytest.approx(0.01) and values["model.hidden_size"] == 8
    assert values["train.optimizer"] == "sgd" and values["train.momentum"] == pytest.approx(0.9)
    assert values["train.scheduler.name"] == "step" and values["train.scheduler.gamma"] == pytest.approx(0.5)
    assert values["status"] == "completed"
    assert not {"train.scheduler.warmup_steps", "train.scheduler.min_lr_ratio",
                "train.scheduler.pct_start", "train.scheduler.factor"} & set(values)
    assert {"test/mse", "best_val/mse"} <= set(metrics)


def test_adam_runs_leave_out_sgd_momentum(write_config, tmp_path: Path) -> None:
    run = train_run(load_experiment(write_config({"logging": {"tensorboard": True}, "train": {"epochs": 1}}),
                                    []), tmp_path / "runs", Reporter(quiet=True))
    values, _ = hparams_of(events(run))
    assert values["train.optimizer"] == "adam" and "train.weight_decay" in values
    assert "train.momentum" not in values and "train.scheduler.gamma" not in values
