"""The optimizer and scheduler contract: every built-in schedule gives PyTorch's own scheduler's lr
sequence (to 1e-12, over 50 steps, warm-up included, each param group at its own lr scale), every
built-in optimizer's defaults are PyTorch's unless rnnlab documents another, each entry owns the
schema of its options (defaults shown by ``rnnlab list``), and a plugin's optimizer and scheduler
with options of their own train end to end."""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml
from torch import nn
from torch.optim import lr_scheduler as tl

from rnnlab.config.loading import build_experiment
from rnnlab.integrations.hparams import in_effect
from rnnlab.models.base import ParamGroup
from rnnlab.registry import OPTIMIZERS, SCHEDULERS
from rnnlab.training.optim import make_optimizer, make_scheduler

from .conftest import SINE_TINY, deep_merge
from .test_cli import assert_user_error, cli

STEPS = 50
LR = 0.01
EPOCHS = 9


class Grouped(nn.Module):
    """Two parameter groups: ``default`` at train.lr, ``head`` at a tenth of it."""

    def __init__(self, grouped: bool) -> None:
        super().__init__()
        self.body, self.head, self.grouped = nn.Linear(3, 3), nn.Linear(3, 1), grouped

    def parameter_groups(self, train: Any) -> list[ParamGroup]:
        return [ParamGroup("head", list(self.head.parameters()), lr_scale=0.1)] if self.grouped else []


def metric(step: int) -> float:
    """A validation metric that improves, stalls and improves again (for plateau)."""
    return [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8, 0.81][step % 10] - 0.01 * (step // 10)


def rnnlab_lrs(schedule: Any, grouped: bool, mode: str = "min") -> tuple[list[list[float]], list[float]]:
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {
        "lr": LR, "optimizer": "sgd", "epochs": EPOCHS, "scheduler": schedule}}))
    opt = make_optimizer(exp.train, Grouped(grouped))
    sched, _ = make_scheduler(exp.train, opt, STEPS, mode)
    lrs = []
    for step in range(STEPS):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        if sched is not None:
            sched.step(metric(step)) if exp.train.scheduler.name == "plateau" else sched.step()
    return lrs, [g["lr"] for g in opt.param_groups]


def torch_lrs(make: Callable[[torch.optim.Optimizer, float], Any], group_lrs: list[float],
              on_metric: bool = False) -> list[list[float]]:
    """PyTorch's scheduler ``make(optimizer, lr)`` run on each group alone, at that group's lr."""
    columns = []
    for lr in group_lrs:
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SequentialLR's own step(0) at a milestone
            sched = make(opt, lr)
            column = []
            for step in range(STEPS):
                column.append(opt.param_groups[0]["lr"])
                opt.step()
                if sched is not None:
                    sched.step(metric(step)) if on_metric else sched.step()
        columns.append(column)
    return [list(row) for row in zip(*columns)]


def warm_cosine(warmup: int, ratio: float) -> Callable[[torch.optim.Optimizer, float], Any]:
    def make(opt: torch.optim.Optimizer, lr: float) -> Any:
        return tl.SequentialLR(opt, [tl.LinearLR(opt, 1 / warmup, 1.0, total_iters=warmup - 1),
                                     tl.CosineAnnealingLR(opt, STEPS - warmup, eta_min=ratio * lr)],
                               milestones=[warmup])
    return make


# (rnnlab's train.scheduler, PyTorch's scheduler with PyTorch's own defaults for what is not given)
SCHEDULES: list[tuple[Any, Callable[[torch.optim.Optimizer, float], Any]]] = [
    ("none", lambda opt, lr: None),
    ("step", lambda opt, lr: tl.StepLR(opt, step_size=max(1, EPOCHS // 3))),  # gamma: PyTorch's 0.1
    ({"name": "step", "step_size": 4, "gamma": 0.5}, lambda opt, lr: tl.StepLR(opt, 4, 0.5)),
    ("cosine", lambda opt, lr: tl.CosineAnnealingLR(opt, STEPS)),  # eta_min: PyTorch's 0
    ({"name": "cosine", "min_lr_ratio": 0.1}, lambda opt, lr: tl.CosineAnnealingLR(opt, STEPS, 0.1 * lr)),
    ({"name": "cosine", "warmup_steps": 5, "min_lr_ratio": 0.1}, warm_cosine(5, 0.1)),
    ({"name": "cosine", "warmup_steps": 12}, warm_cosine(12, 0.0)),
    ("onecycle", lambda opt, lr: tl.OneCycleLR(opt, max_lr=lr, total_steps=STEPS)),
    ({"name": "onecycle", "pct_start": 0.25, "div_factor": 10, "final_div_factor": 100},
     lambda opt, lr: tl.OneCycleLR(opt, lr, total_steps=STEPS, pct_start=0.25, div_factor=10,
                                   final_div_factor=100)),
    # patience: rnnlab's documented 2 (PyTorch's 10); factor: PyTorch's 0.1
    ("plateau", lambda opt, lr: tl.ReduceLROnPlateau(opt, patience=2)),
    ({"name": "plateau", "factor": 0.5, "patience": 0},
     lambda opt, lr: tl.ReduceLROnPlateau(opt, factor=0.5, patience=0)),
]


@pytest.mark.parametrize("grouped", [False, True], ids=["one group", "groups at lr x1 and x0.1"])
@pytest.mark.parametrize("schedule, reference", SCHEDULES, ids=[json.dumps(s) for s, _ in SCHEDULES])
def test_every_schedule_gives_pytorchs_lr_sequence(schedule: Any, reference: Callable[..., Any],
                                                    grouped: bool) -> None:
    ours, _ = rnnlab_lrs(schedule, grouped)
    group_lrs = [LR, LR * 0.1] if grouped else [LR]
    name = schedule if isinstance(schedule, str) else schedule["name"]
    theirs = torch_lrs(reference, group_lrs, on_metric=name == "plateau")
    assert len(ours) == len(theirs) == STEPS
    for step, (a, b) in enumerate(zip(ours, theirs)):
        assert a == pytest.approx(b, abs=1e-12, rel=0), f"step {step}: {a} != {b}"
    assert len({tuple(row) for row in ours}) > 1 or name == "none"  # the schedule did move the lr


def test_the_contract_covers_every_built_in_schedule() -> None:
    built_in = {n for n in SCHEDULERS.names() if SCHEDULERS.get(n).__module__ == "rnnlab.training.optim"}
    covered = {s if isinstance(s, str) else s["name"] for s, _ in SCHEDULES}
    assert built_in == covered
    for name in built_in:  # every option of every schedule is exercised with a non-default value
        given = {k for s, _ in SCHEDULES if isinstance(s, dict) and s["name"] == name for k in s} - {"name"}
        assert given == set(SCHEDULERS.get(name).Options.model_fields), name


# ----------------------------------------------------------------------------- optimizers

TORCH = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
#: where rnnlab's default is not PyTorch's: (optimizer, key) -> (rnnlab's, what its description says)
DOCUMENTED = {("adamw", "weight_decay"): (0.0, "PyTorch's 0.01"), ("sgd", "momentum"): (0.9, "PyTorch's 0")}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_optimizer_defaults_are_pytorchs_unless_documented(name: str) -> None:
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {"optimizer": name, "lr": 1e-3}}))
    opt = make_optimizer(exp.train, Grouped(False))
    assert isinstance(opt, TORCH[name])
    how = ("foreach", "fused", "maximize", "capturable", "differentiable")  # how, not what, it computes
    torch_defaults = {k: p.default for k, p in inspect.signature(TORCH[name].__init__).parameters.items()
                      if p.default is not inspect.Parameter.empty and k not in how}
    described = dict(OPTIMIZERS.describe())[name]
    checked = set()
    for key, default in torch_defaults.items():
        ours = opt.defaults[key]
        ours = tuple(ours) if isinstance(ours, (list, tuple)) else ours
        if (name, key) in DOCUMENTED:
            value, text = DOCUMENTED[name, key]
            assert ours == value != default and text in described, (key, ours, default)
        else:
            assert ours == default, (key, ours, default)
        checked.add(key)
    # every option of the optimizer's own schema is one of torch's arguments, checked above
    assert set(OPTIMIZERS.get(name).Options.model_fields) <= checked
    assert {"lr", "weight_decay"} <= checked


def test_the_contract_covers_every_built_in_optimizer() -> None:
    built_in = {n for n in OPTIMIZERS.names() if OPTIMIZERS.get(n).__module__ == "rnnlab.training.optim"}
    assert built_in == set(TORCH)


@pytest.mark.parametrize("name, options, key, value", [
    ("adam", {"betas": [0.8, 0.9], "eps": 1e-6, "amsgrad": True}, "betas", (0.8, 0.9)),
    ("adamw", {"eps": 1e-7}, "eps", 1e-7),
    ("sgd", {"nesterov": True}, "nesterov", True),
    ("sgd", {"dampening": 0.1}, "dampening", 0.1),
])
def test_optimizer_options_reach_the_torch_optimizer_and_are_written_as_given(name, options, key,
                                                                              value) -> None:
    train = {"optimizer": name, "optimizer_options": options}
    exp = build_experiment(deep_merge(SINE_TINY, {"train": train}))
    opt = make_optimizer(exp.train, Grouped(True))
    got = opt.defaults[key]
    assert (tuple(got) if isinstance(got, (list, tuple)) else got) == value
    for group in opt.param_groups:  # default and head alike
        assert (tuple(group[key]) if isinstance(group[key], (list, tuple)) else group[key]) == value
    assert exp.to_dict()["train"]["optimizer_options"] == options  # what was given, no more


@pytest.mark.parametrize("train, fragment", [
    ({"optimizer_options": {"bets": [0.9, 0.99]}},
     "train.optimizer_options.bets: option 'bets' does not apply to optimizer 'adam' "
     "(its options: betas, eps, amsgrad"),
    ({"optimizer": "sgd", "optimizer_options": {"betas": [0.9, 0.99]}},
     "train.optimizer_options.betas: option 'betas' does not apply to optimizer 'sgd'"),
    ({"optimizer_options": {"betas": [0.9, 1.0]}}, "train.optimizer_options.betas.1: must be < 1"),
    ({"optimizer_options": {"eps": "tiny"}}, "train.optimizer_options.eps: must be a number, got 'tiny'"),
    ({"optimizer_options": {"weight_decay": 0.1}},
     "train.optimizer_options.weight_decay: is a train key; set train.weight_decay"),
    ({"optimizer": "sgd", "momentum": 0, "optimizer_options": {"nesterov": True}},
     "train.optimizer_options.nesterov: needs train.momentum > 0 and dampening 0"),
    ({"optimizer_options": [1]}, "train.optimizer_options: must be a mapping"),
    ({"scheduler": {"name": "onecycle", "warmup_steps": 3}},
     "train.scheduler.warmup_steps: option 'warmup_steps' does not apply to scheduler 'onecycle' "
     "(its options: "
     "pct_start, div_factor, final_div_factor"),
    ({"scheduler": {"name": "step", "gamma": 0}}, "train.scheduler.gamma: must be > 0"),
    ({"scheduler": {"name": "cosine", "warmup_steps": True}},
     "train.scheduler.warmup_steps: must be an integer, not a boolean"),
])
def test_an_option_the_entry_does_not_have_or_a_bad_value_is_one_line(write_config, train, fragment) -> None:
    assert_user_error(cli("config", str(write_config({"train": train}))), fragment)


def test_options_read_as_their_values_in_effect_and_old_run_configs_keep_their_form() -> None:
    old = {"name": "cosine", "step_size": None, "gamma": None, "min_lr_ratio": 0.1, "warmup_steps": None,
           "factor": None, "patience": None, "pct_start": None, "div_factor": None, "final_div_factor": None}
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {"scheduler": old, "momentum": 0.9}}))
    s = exp.train.scheduler
    assert (s.min_lr_ratio, s.warmup_steps, s.gamma) == (0.1, 0, None)  # in effect; gamma: not cosine's
    assert exp.to_dict()["train"]["scheduler"] == old  # the config hash of old checkpoints still matches
    step = build_experiment(deep_merge(SINE_TINY, {"train": {"scheduler": "plateau"}})).train.scheduler
    assert (step.factor, step.patience) == (0.1, 2)
    assert step.options().model_dump() == {"factor": 0.1, "patience": 2}
    assert build_experiment(SINE_TINY).train.optimizer_settings.model_dump() == {
        "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False}


def test_hparams_log_the_options_in_effect_with_their_defaults() -> None:
    train = {"optimizer": "adamw", "optimizer_options": {"eps": 1e-6},
             "scheduler": {"name": "onecycle", "pct_start": 0.2}}
    exp = build_experiment(deep_merge(SINE_TINY, {"train": train}))
    params = in_effect(exp.to_dict())
    assert params["train.optimizer_options.eps"] == 1e-6
    assert params["train.optimizer_options.betas"] == [0.9, 0.999]
    assert params["train.optimizer_options.amsgrad"] is False
    assert (params["train.scheduler.pct_start"], params["train.scheduler.div_factor"]) == (0.2, 25.0)
    assert params["train.scheduler.final_div_factor"] == 1e4
    assert not {"train.momentum", "train.scheduler.gamma", "train.scheduler.warmup_steps"} & set(params)
    sgd = in_effect(build_experiment(deep_merge(SINE_TINY, {"train": {"optimizer": "sgd"}})).to_dict())
    assert sgd["train.momentum"] == 0.9 and sgd["train.optimizer_options.nesterov"] is False
    assert "train.optimizer_options.betas" not in sgd and not any(k.startswith("train.scheduler.") and
                                                                  k != "train.scheduler.name" for k in sgd)


def test_list_shows_every_option_with_its_real_default(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    expected = {"adam": {"train.lr": "0.001", "train.optimizer_options.betas": "(0.9, 0.999)",
                         "train.optimizer_options.eps": "1e-08"},
                "sgd": {"train.momentum": "0.9", "train.optimizer_options.nesterov": "False"},
                "step": {"train.scheduler.gamma": "0.1", "train.scheduler.step_size": "train.epochs // 3"},
                "cosine": {"train.scheduler.min_lr_ratio": "0.0", "train.scheduler.warmup_steps": "0"},
                "onecycle": {"train.scheduler.pct_start": "0.3",
                             "train.scheduler.final_div_factor": "10000.0"},
                "plateau": {"train.scheduler.patience": "2", "train.scheduler.factor": "0.1"}}
    for name, rows in expected.items():
        result = cli("list", name)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        for key, default in rows.items():
            (line,) = [line for line in lines if line.startswith(f"│ {key} ")]
            assert default in line and "None" not in line, line


# ----------------------------------------------------------------------------- plugins

PLUGIN = '''
import torch
from pydantic import Field
import rnnlab
from rnnlab.training.optim import OptimizerOptions, SchedulerOptions


class ScaledOptions(OptimizerOptions):
    scale: float = Field(0.5, gt=0, le=1, description="lr multiplier")


@rnnlab.register_optimizer("scaled_sgd", "SGD at train.lr * scale", options=("lr",), schema=ScaledOptions)
def scaled_sgd(params, train):
    return torch.optim.SGD(params, lr=train.lr * train.optimizer_settings.scale)


class RampOptions(SchedulerOptions):
    start: float = Field(0.25, gt=0, le=1, description="first lr / lr")


@rnnlab.register_scheduler("ramp", "linear ramp from start * lr (per step)", per_step=True,
                           schema=RampOptions)
def ramp(train, optimizer, total_steps, mode):
    return torch.optim.lr_scheduler.LinearLR(optimizer, train.scheduler.start, 1.0, total_iters=total_steps)
'''


def test_a_plugin_optimizer_and_scheduler_with_their_own_options_train(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich: no wrapping inside the table cells
    (tmp_path / "optplug.py").write_text(PLUGIN)
    cfg = deep_merge(SINE_TINY, {"plugins": ["optplug.py"], "train": {
        "epochs": 2, "steps_per_epoch": 1, "lr": 0.01, "optimizer": "scaled_sgd",
        "optimizer_options": {"scale": 0.2}, "scheduler": {"name": "ramp", "start": 0.5}}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = cli("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert result.exit_code == 0, result.output
    run = Path(result.stdout.strip().splitlines()[-1])
    saved = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert saved["optimizer_options"] == {"scale": 0.2} and saved["scheduler"]["start"] == 0.5
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    (group,) = ckpt["optimizer"]["param_groups"]
    assert group["initial_lr"] == pytest.approx(0.002)  # train.lr * the plugin's option
    assert group["lr"] == pytest.approx(0.002 * (0.5 + 0.5 * 2 / 2))  # the ramp at its end, 2 steps
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [round(r["lr"], 9) for r in rows] == [0.0015, 0.002] and rows[-1]["step"] == 2
    logged = in_effect(yaml.safe_load((run / "config.yaml").read_text()))
    assert logged["train.optimizer_options.scale"] == 0.2 and logged["train.scheduler.start"] == 0.5

    # its options have defaults shown by `rnnlab list`, and are checked like the built-ins'
    listed = cli("list", "scaled_sgd", "--plugin", str(tmp_path / "optplug.py"))
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    (line,) = [line for line in lines if line.startswith("│ train.optimizer_options.scale ")]
    assert "0.5" in line and "lr multiplier" in line
    cfg["train"]["optimizer_options"] = {"scale": 2}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    assert_user_error(cli("train", str(tmp_path / "bad.yaml"), "--runs-dir", str(tmp_path / "r2")),
                      "train.optimizer_options.scale: must be <= 1")
    cfg["train"]["optimizer_options"] = {}
    cfg["train"]["scheduler"] = {"name": "ramp", "gamma": 0.5}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    assert_user_error(cli("train", str(tmp_path / "bad.yaml"), "--runs-dir", str(tmp_path / "r2")),
                      "train.scheduler.gamma: option 'gamma' does not apply to scheduler 'ramp' "
                      "(its options: start")
    assert not (tmp_path / "r2").exists()
