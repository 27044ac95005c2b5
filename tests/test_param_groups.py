"""Parameter groups: a model declares groups with their own lr scale and weight decay; optimizers
get them, every schedule keeps their ratio, ``rnnlab list`` shows them."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.config.loading import build_experiment
from rnnlab.errors import ConfigError
from rnnlab.models import MODELS
from rnnlab.models.base import ParamGroup
from rnnlab.models.recurrent import GRU
from rnnlab.training.build import build
from rnnlab.training.optim import make_optimizer, make_scheduler

CPU = torch.device("cpu")
runner = CliRunner()


def setup(model: dict[str, Any], **train: Any) -> tuple[Any, Any]:
    exp = build_experiment({"task": {"name": "sine", "mode": "window", "window": 5, "n_points": 200},
                            "model": {"hidden_size": 8, **model},
                            "train": {"lr": 4e-3, "optimizer": "adamw", "weight_decay": 0.05, **train}})
    return exp, build(exp, CPU)[1]


def groups(optimizer: torch.optim.Optimizer) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in optimizer.param_groups}


def test_s4d_declares_ssm_and_no_decay_groups() -> None:
    exp, model = setup({"name": "s4d", "num_layers": 2})
    opt = make_optimizer(exp.train, model)
    assert [g["name"] for g in opt.param_groups] == ["default", "ssm", "no_decay"]
    named = {id(p): name.rpartition(".")[2] for name, p in model.named_parameters()}
    by = groups(opt)
    assert {named[id(p)] for p in by["ssm"]["params"]} == {"log_dt", "log_A_real", "A_imag"}
    assert {named[id(p)] for p in by["no_decay"]["params"]} == {"bias", "weight", "C", "D"}  # norms
    assert all(p.dim() == 2 for p in by["default"]["params"])  # the matrices
    assert (by["default"]["lr"], by["default"]["weight_decay"]) == (4e-3, 0.05)
    assert by["ssm"]["lr"] == pytest.approx(1e-3) and by["ssm"]["weight_decay"] == 0.0
    assert (by["no_decay"]["lr"], by["no_decay"]["weight_decay"]) == (4e-3, 0.0)
    total = sum(len(g["params"]) for g in opt.param_groups)
    assert total == len(list(model.parameters()))  # each parameter once
    exp, model = setup({"name": "s4d", "ssm_lr": 5e-4}, lr=2e-4)
    assert groups(make_optimizer(exp.train, model))["ssm"]["lr"] == pytest.approx(5e-4)
    exp, model = setup({"name": "s4d"}, lr=2e-4)  # min(train.lr, 1e-3)
    assert groups(make_optimizer(exp.train, model))["ssm"]["lr"] == pytest.approx(2e-4)


@pytest.mark.parametrize("family", ["mingru", "minlstm"])
def test_min_families_exempt_vectors_from_weight_decay(family: str) -> None:
    exp, model = setup({"name": family, "block": "residual", "num_layers": 2, "conv": 4})
    opt = make_optimizer(exp.train, model)
    assert [g["name"] for g in opt.param_groups] == ["default", "no_decay"]
    by = groups(opt)
    named = {id(p): name for name, p in model.named_parameters()}
    no_decay = {named[id(p)] for p in by["no_decay"]["params"]}
    assert all(name.endswith("bias") or ".norms" in name or "final_norm" in name for name in no_decay)
    assert any(name.endswith("layers.0.proj.bias") for name in no_decay)  # the gates' biases
    assert all(p.dim() >= 2 for p in by["default"]["params"])
    assert by["default"]["weight_decay"] == 0.05 and by["no_decay"]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    exp, model = setup({"name": family, "block": "residual"}, weight_decay=0.0)
    assert len(make_optimizer(exp.train, model).param_groups) == 1  # as before: resumes unchanged


def test_a_model_without_groups_keeps_one_group() -> None:
    exp, model = setup({"name": "gru"})
    opt = make_optimizer(exp.train, model)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 0.05


SCHEDULES = [{"name": "cosine", "min_lr_ratio": 0.1}, {"name": "cosine", "warmup_steps": 5},
             {"name": "onecycle"}, {"name": "step", "step_size": 1, "gamma": 0.5},
             {"name": "plateau", "patience": 0, "factor": 0.8}]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "-".join(map(str, s.values())))
def test_every_schedule_keeps_the_groups_lr_ratio(schedule: dict[str, Any]) -> None:
    exp, model = setup({"name": "s4d"}, scheduler=schedule, epochs=4)
    opt = make_optimizer(exp.train, model)
    scheduler, _ = make_scheduler(exp.train, opt, 40, "min")
    seen = set()
    for _ in range(40):
        opt.step()
        scheduler.step(1.0) if schedule["name"] == "plateau" else scheduler.step()
        by = groups(opt)
        seen.add(round(by["default"]["lr"], 12))
        assert by["ssm"]["lr"] == pytest.approx(by["default"]["lr"] * 0.25, rel=1e-9)
        assert by["no_decay"]["lr"] == pytest.approx(by["default"]["lr"], rel=1e-9)
    assert len(seen) > 2  # the schedule did move the lr
    if schedule.get("min_lr_ratio"):  # cosine ends at each group's own floor
        assert groups(opt)["ssm"]["lr"] == pytest.approx(1e-3 * 0.1)


class Grouped(GRU):
    """A plugin-style model: its head trains 10x slower, without weight decay."""

    PARAM_GROUPS = {"head": "the output layer: lr x 0.1, no weight decay"}

    def parameter_groups(self, train: Any) -> list[ParamGroup]:
        return [ParamGroup("head", list(self.head.parameters()), lr_scale=0.1, weight_decay=0.0)]


class Twice(GRU):
    def parameter_groups(self, train: Any) -> list[ParamGroup]:
        return [ParamGroup("a", list(self.head.parameters())), ParamGroup("b", [self.head.weight])]


def test_a_plugin_model_declares_groups_and_list_shows_them(monkeypatch) -> None:
    monkeypatch.setitem(MODELS._items, "grouped", (Grouped, "a GRU with a slow head"))
    exp, model = setup({"name": "grouped"})
    by = groups(make_optimizer(exp.train, model))
    assert list(by) == ["default", "head"]
    assert by["head"]["lr"] == pytest.approx(4e-4) and by["head"]["weight_decay"] == 0.0
    assert len(by["head"]["params"]) == 2 and by["default"]["weight_decay"] == 0.05
    out = runner.invoke(app, ["list", "grouped"]).output
    assert "parameter groups" in out and "head" in out and "lr x 0.1" in out
    assert "parameter groups" not in runner.invoke(app, ["list", "gru"]).output
    out = runner.invoke(app, ["list", "s4d"]).output
    assert "ssm" in out and "no_decay" in out and "log_dt" in out


def test_a_parameter_in_two_groups_is_refused(monkeypatch) -> None:
    monkeypatch.setitem(MODELS._items, "twice", (Twice, "two groups share a parameter"))
    exp, model = setup({"name": "twice"})
    with pytest.raises(ConfigError, match="parameter groups 'a' and 'b' both name the same parameter"):
        make_optimizer(exp.train, model)
