"""The synthetic long-memory tasks (adding, copy, selective_copy): what they generate, that it is
seeded, that their baselines are right, that a model can learn one, and that bad options are
one-line errors naming the field."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from rnnlab.config.loading import build_experiment
from rnnlab.errors import ConfigError
from rnnlab.testing import assert_passes, check_task
from rnnlab.testing.layouts import Oracle
from rnnlab.training.build import build_task
from rnnlab.training.evaluation import evaluate

SMALL = {"n_train": 32, "n_val": 16, "n_test": 16}


def raw(task: dict[str, Any], model: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    return {"task": task, "model": model or {"name": "lstm", "hidden_size": 8},
            "train": {"epochs": 1, "batch_size": 16, "lr": 0.01, "seed": 0, "threads": 1, **train},
            "logging": {"plots": False}}


def make(name: str, data: dict[str, Any] | None = None, **task: Any):
    cfg = raw({"name": name, **SMALL, **task})
    if data:
        cfg["data"] = data
    return build_task(build_experiment(cfg), torch.device("cpu"))


# ----------------------------------------------------------------------------- adding


def test_adding_sequences_have_two_markers_one_per_half_and_the_marked_sum_as_target() -> None:
    task = make("adding", length=40)
    x, y = task.x["train"], task.y["train"]
    assert x.shape == (32, 40, 2) and y.shape == (32, 1) and task.spec.window == 40
    values, marks = x[..., 0], x[..., 1]
    assert bool(((values >= 0) & (values < 1)).all())
    assert marks.sum(1).tolist() == [2.0] * 32
    assert marks[:, :20].sum(1).tolist() == [1.0] * 32  # one in each half
    for i in range(32):
        where = marks[i].nonzero().flatten()
        assert y[i, 0].item() == pytest.approx(values[i, where].sum().item())


def test_adding_baseline_of_the_constant_one_is_a_sixth() -> None:
    task = make("adding", length=10, n_test=50000)
    zero = Oracle(lambda x, _: torch.ones(len(x), 1))  # the constant 1.0 itself
    m = evaluate(task, zero, "test", 4096)
    assert m["baseline_mse"] == pytest.approx(1 / 6, abs=0.005)
    assert m["mse"] == pytest.approx(m["baseline_mse"]) and m["mse_over_baseline"] == pytest.approx(1.0)
    half = Oracle(lambda x, _: 0.5 * task.answer(x) + 0.5)  # half way between the answer and 1.0
    assert evaluate(task, half, "test", 4096)["mse_over_baseline"] == pytest.approx(0.25, rel=1e-4)


def test_an_lstm_learns_adding_at_length_20() -> None:
    from rnnlab.models import build_model

    torch.manual_seed(0)
    cfg = raw({"name": "adding", "length": 20, "n_train": 6400, "n_val": 16, "n_test": 500},
              {"name": "lstm", "hidden_size": 32})
    exp = build_experiment(cfg)
    task = build_task(exp, torch.device("cpu"))
    model = build_model(exp.model, task.spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # 600 steps of 32: a few seconds
        for batch in task.train_batches(32, gen):
            loss, _ = task.loss(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    m = evaluate(task, model, "test", 500)
    assert m["mse"] < 0.1 * m["baseline_mse"], m  # far below what memory of nothing gets


# ----------------------------------------------------------------------------- copy tasks


def test_copy_layout_symbols_delay_delimiter_then_blank_outputs() -> None:
    task = make("copy", length=7, n_tokens=3, symbols=4)
    x, y = task.x["train"].long(), task.y["train"]
    assert x.shape == (32, 3 + 7 + 1 + 3) and y.shape == (32, 3)
    assert task.spec.input_size == 6 and task.spec.output_size == 4 and task.spec.output == "sequence"
    assert torch.equal(x[:, :3], y + 1)  # token = class + 1 (0 is the blank)
    assert bool((x[:, 3:10] == 0).all()) and bool((x[:, 10] == 5).all()) and bool((x[:, 11:] == 0).all())
    assert bool(((y >= 0) & (y < 4)).all())


def test_selective_copy_tokens_are_scattered_in_order_among_noise() -> None:
    task = make("selective_copy", length=30, n_tokens=4, symbols=5, noise=3)
    x, y = task.x["train"].long(), task.y["train"]
    assert x.shape == (32, 30 + 1 + 4) and task.spec.input_size == 3 + 5 + 1
    region = x[:, :30]
    data = region >= 3
    assert data.sum(1).tolist() == [4] * 32  # exactly n_tokens data tokens
    assert bool((region[~data] < 3).all()) and len(region[~data].unique()) == 3  # every noise token used
    for i in range(32):
        assert region[i][data[i]].tolist() == (y[i] + 3).tolist()  # in order of position
    assert bool((x[:, 30] == 8).all()) and bool((x[:, 31:] == 0).all())
    starts = data.float().argmax(1)
    assert len(starts.unique()) > 1  # the positions vary between sequences


@pytest.mark.parametrize("name", ["copy", "selective_copy"])
def test_copy_scores_only_the_output_steps_and_reports_the_input_blind_baseline(name: str) -> None:
    task = make(name, length=12, n_tokens=5, symbols=4, n_test=4000)
    steps, classes = task.x["test"].shape[1], 4

    def answer(x: torch.Tensor, _: Any) -> torch.Tensor:
        out = torch.randn(len(x), steps, classes)  # garbage before the output steps is not scored
        out[:, -5:] = torch.nn.functional.one_hot(task.answer(x), classes) * 50.0
        return out
    m = evaluate(task, Oracle(answer), "test", 512)
    assert m["accuracy"] == 1.0 and m["sequence_accuracy"] == 1.0 and m["loss"] < 1e-6
    blind = Oracle(lambda x, _: torch.zeros(len(x), steps, classes))  # uniform: no memory at all
    b = evaluate(task, blind, "test", 512)
    assert b["loss"] == pytest.approx(math.log(classes))
    assert b["baseline_loss"] == pytest.approx(math.log(classes), rel=0.02)  # symbols are uniform
    assert b["baseline_accuracy"] == pytest.approx(1 / classes, abs=0.03)


def test_copy_bigger_vocabularies_need_wider_token_ids() -> None:
    task = make("selective_copy", length=20, n_tokens=2, symbols=300, noise=200)
    assert int(task.x["train"].max()) < 501 and task.spec.input_size == 501
    assert int(task.x["train"][:, 20].min()) == 500


# ----------------------------------------------------------------------------- all three


@pytest.mark.parametrize("name,opts", [("adding", {"length": 25}),
                                       ("copy", {"length": 9, "n_tokens": 7}),
                                       ("selective_copy", {"length": 20, "n_tokens": 5})])
def test_generation_is_seeded_and_splits_are_independent_of_the_others_sizes(name: str, opts: dict) -> None:
    a, b = make(name, **opts), make(name, **opts)
    for split in ("train", "val", "test"):
        assert torch.equal(a.x[split], b.x[split]) and torch.equal(a.y[split], b.y[split])
    other = make(name, data={"seed": 5}, **opts)
    assert not torch.equal(a.x["test"], other.x["test"])
    bigger = make(name, **{**opts, "n_train": 50})
    assert torch.equal(bigger.x["test"], a.x["test"]) and torch.equal(bigger.x["val"], a.x["val"])
    assert not torch.equal(a.x["train"][:16], a.x["val"])
    batches = [list(t.train_batches(8, torch.Generator().manual_seed(3))) for t in (a, b)]
    assert all(torch.equal(p.x, q.x) and torch.equal(p.y, q.y) for p, q in zip(*batches))
    assert sum(batch.size for batch in batches[0]) == 32


@pytest.mark.parametrize("name", ["adding", "copy", "selective_copy"])
def test_rnnlab_check_passes(name: str) -> None:
    assert_passes(check_task(name))


@pytest.mark.parametrize("task,text", [
    ({"name": "adding", "length": 1}, "task.length: must be >= 2, got 1"),
    ({"name": "adding", "n_train": 0}, "task.n_train: must be > 0, got 0"),
    ({"name": "copy", "symbols": 1}, "task.symbols: must be >= 2, got 1"),
    ({"name": "copy", "n_tokens": "ten"}, "task.n_tokens: must be an integer"),
    ({"name": "selective_copy", "length": 5, "n_tokens": 8}, "task.n_tokens: 8 data tokens do not fit"),
    ({"name": "selective_copy", "noise": 0}, "task.noise: must be >= 1, got 0"),
    ({"name": "adding", "length": 10**9}, "task: 12000 sequences of 1000000000 steps"),
    ({"name": "copy", "symbols": 2, "n_tokens": 3}, "task: cannot draw val sequences unlike"),
])
def test_bad_options_are_config_errors_naming_the_field(task: dict, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_task(build_experiment(raw(task)), torch.device("cpu"))
    assert text in str(err.value)


def test_a_sequence_drawn_into_two_splits_fails_the_split_check() -> None:
    from rnnlab.testing.layouts import layout
    from rnnlab.testing.task_checks import disjoint

    task = make("copy", length=9, n_tokens=2, symbols=8, n_train=40, n_val=20, n_test=4)  # 64 sequences
    assert disjoint(layout(task))[0] == "pass"  # redrawn: none of val/test is a training sequence
    assert len({row.numpy().tobytes() for row in task.x["val"]} & {row.numpy().tobytes()
                                                                   for row in task.x["train"]}) == 0
    task.x["test"][3] = task.x["train"][3]
    status, text = disjoint(layout(task))
    assert status == "fail" and "train and test share 1 example" in text


# ----------------------------------------------------------------------------- shipped configs


def test_shipped_memory_configs_validate() -> None:
    """The adding configs build, and the sweeps over whole model sections expand into valid trials
    with every family (s4d included)."""
    from rnnlab.config.loading import load_experiment
    from rnnlab.sweeps.spec import expand, show
    from rnnlab.sweeps.sweepfile import load_sweep

    from .conftest import CONFIGS

    exp = load_experiment(CONFIGS / "lstm_adding.yaml", [], None)
    assert exp.task.length == 1000 and exp.train.max_time == 600 and exp.model.name == "lstm"
    ssm = load_experiment(CONFIGS / "ssm_adding.yaml", [], None)
    # the selective recurrence (minGRU) with chrono initialisation over the sequence: s4d, linear
    # time-invariant, does not learn the task at this length and budget (docs/tutorials/memory.md)
    assert ssm.task.length == 1000 and ssm.train.max_time == 600 and ssm.model.name == "mingru"
    assert ssm.model.chrono_init == "auto"
    assert ssm.model.pooling == "last"  # a mean would sum over time itself: no memory needed
    for name, trials in (("sweep_long_memory.yaml", 15), ("sweep_families_repeats.yaml", 18)):
        expanded = expand(load_sweep(CONFIGS / name))
        assert len(expanded) == trials
        assert "s4d" in {t.config["model"]["name"] for t in expanded}
        pooling = {t.config["model"]["name"]: t.config["model"]["pooling"] for t in expanded}
        if name == "sweep_long_memory.yaml":  # mean pooling would sum over time: no memory needed
            assert set(pooling.values()) == {"last"}
            assert {t.config["task"]["length"] for t in expanded} == {100, 500, 1000}
    assert show({"name": "mingru", "conv": 4, "norm": True}) == "mingru conv=4 norm=true"
