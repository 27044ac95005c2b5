from __future__ import annotations

import pytest
import torch

from rnnlab.config.loading import build_experiment
from rnnlab.models import build_model
from rnnlab.training.build import build_task
from rnnlab.training.evaluation import evaluate

from .conftest import SINE_TINY, deep_merge


def task_for(**task):
    """The task, with the experiment it was built from beside it (``.experiment``: the model's options)."""
    exp = build_experiment(deep_merge(SINE_TINY, {"task": task}))
    built = build_task(exp, torch.device("cpu"))
    built.experiment = exp
    return built


@pytest.mark.parametrize("mode,extra", [("window", {"window": 6}), ("rollout", {"window": 6, "horizon": 5})])
def test_no_window_crosses_a_split_boundary(mode, extra) -> None:
    task = task_for(mode=mode, **extra)
    for split, (start, stop) in task.bounds.items():
        w = task.windows[split]
        assert w["pos"].min() >= start + extra["window"] and w["pos"].max() < stop
        # inputs are the values just before the targets, inside the split too
        first_input = w["pos"][:, 0] - extra["window"]
        assert first_input.min() >= start
        assert torch.equal(w["x"][:, 0, 0], task.series[first_input])
        assert torch.equal(w["y"][..., 0], task.series[w["pos"]])


def test_series_is_seeded_and_split_60_20_20() -> None:
    a, b = task_for(), task_for()
    assert torch.equal(a.series, b.series)
    assert a.bounds == {"train": (0, 180), "val": (180, 240), "test": (240, 300)}
    assert torch.allclose(a.clean, torch.sin(0.01 * torch.arange(300.0)))


def test_seq2seq_contexts() -> None:
    base = dict(mode="seq2seq", seq_len=50, stride=5, warmup=10)
    win = task_for(**base)  # default: each target from the seq_len values before it
    assert win.windows["train"]["pos"].max() < 180  # training windows stay in the train split
    assert win.windows["test"]["pos"].flatten().tolist() == list(range(240, 300))
    assert torch.equal(win.windows["test"]["x"][0, :, 0], win.series[190:240])
    split = task_for(eval_context="split", **base)
    assert split.windows["test"]["pos"].tolist() == [list(range(241, 300))]


def test_metrics_are_relative_to_the_realised_noise() -> None:
    task = task_for()
    model = build_model(task.experiment.model, task.spec)
    m = evaluate(task, model, "test", 64)
    p = task.predictions(model.eval(), "test", 64)
    noise = (p["y"] - p["clean"]).double().pow(2).mean().item()
    assert m["mse_over_noise"] == pytest.approx(m["mse"] / noise)
    assert m["targets"] == 60 - 4
    clean = task_for(sigma=0.0)
    assert "mse_over_noise" not in evaluate(clean, model, "test", 64)


def test_split_too_small_is_a_config_error() -> None:
    from rnnlab.errors import ConfigError

    with pytest.raises(ConfigError, match="too few for windows"):
        task_for(mode="rollout", window=40, horizon=30)
