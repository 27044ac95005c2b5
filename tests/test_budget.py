"""train.max_time (a training-time budget), train.max_steps and the exact replay of a budgeted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.config.schema import TrainConfig
from rnnlab.errors import ConfigError
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs
from rnnlab.training.budget import VIRTUAL_STEPS, StepPlan
from rnnlab.training.build import build
from rnnlab.training.evaluation import evaluate_run
from rnnlab.training.trainer import Trainer

TIMING = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")
BUDGETED = {"task": {"n_points": 600},
            "train": {"epochs": 500, "max_time": "1.5 s",
                      "scheduler": {"name": "cosine", "min_lr_ratio": 0.1}}}


def train(path: Path, runs_dir: Path, *overrides: str) -> Path:
    return train_run(load_experiment(path, list(overrides)), runs_dir, Reporter(quiet=True))


def summary(run: Path) -> dict:
    return json.loads((run / runs.SUMMARY).read_text())


def rows(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in runs.read_jsonl(run / runs.METRICS)]


@pytest.mark.parametrize("text, seconds", [("10 min", 600.0), ("90 s", 90.0), (600, 600.0),
                                           ("1.5h", 5400.0), ("2 minutes", 120.0), (" 45 ", 45.0)])
def test_max_time_reads_durations(text, seconds) -> None:
    assert TrainConfig(max_time=text).max_time == seconds


@pytest.mark.parametrize("bad, message", [("ten minutes", "expected a duration"),
                                          (True, "expected a duration"), (-5, "must be > 0"),
                                          ("5 days", "expected a duration")])
def test_bad_max_time_is_one_config_error(write_config, bad, message) -> None:
    with pytest.raises(ConfigError, match=f"train.max_time: .*{message}"):
        load_experiment(write_config({"train": {"max_time": bad}}))


def test_a_budget_stops_training_and_the_schedule_follows_its_elapsed_fraction(write_config, runs_dir):
    run = train(write_config(BUDGETED), runs_dir)
    s = summary(run)
    assert s["status"] == "completed" and s["stopped"] == "time budget"
    assert 1.5 <= s["train_seconds"] < 1.5 + 1.0 and s["epochs_completed"] < 500
    history = runs.read_jsonl(run / runs.METRICS)
    assert history[-1]["step"] == s["steps"] and sum(r["steps"] for r in history) == s["steps"]
    lrs = [r["lr"] for r in history]
    assert lrs == sorted(lrs, reverse=True)  # cosine decay, driven by the clock
    assert lrs[-1] == pytest.approx(0.01 * 0.1)  # the budget used up: the schedule's end
    trace = runs.load_checkpoint(run / runs.CHECKPOINTS / "last.pt")["trainer"]["schedule_trace"]
    assert len(trace) == s["steps"] and sum(trace) == VIRTUAL_STEPS
    # the best checkpoint's validation figures come back from `rnnlab eval --split val`
    assert evaluate_run(run, "val") == s["best_val"]


def test_replay_reruns_exactly_the_steps_and_schedule_of_a_budgeted_run(write_config, runs_dir) -> None:
    config = write_config(BUDGETED)
    run = train(config, runs_dir)
    replay = train(config, runs_dir, f"train.replay={run}")
    a, b = summary(run), summary(replay)
    assert b["steps"] == a["steps"] and b["stopped"] == "max_steps" and b["replay_of"] == str(run)
    assert rows(replay) == rows(run) and b["test"] == a["test"] and b["best_val"] == a["best_val"]


def test_a_run_from_before_optimizer_options_is_replayed(write_config, runs_dir) -> None:
    import yaml

    config = write_config(BUDGETED)
    run = train(config, runs_dir)
    saved = yaml.safe_load((run / runs.CONFIG).read_text())
    del saved["train"]["optimizer_options"]  # as config.yaml was written before that key existed
    (run / runs.CONFIG).write_text(yaml.safe_dump(saved, sort_keys=False))
    replay = train(config, runs_dir, f"train.replay={run}")
    assert summary(replay)["steps"] == summary(run)["steps"]
    with pytest.raises(ConfigError, match="was trained with train.optimizer_options.eps=None"):
        train(config, runs_dir, f"train.replay={run}", "train.optimizer_options.eps=1e-6")


def test_replay_of_another_experiment_or_of_no_run_is_refused(write_config, runs_dir, tmp_path) -> None:
    config = write_config(BUDGETED)
    run = train(config, runs_dir)
    with pytest.raises(ConfigError, match="train.replay: .* was trained with train.lr=0.01, this config has"):
        train(config, runs_dir, f"train.replay={run}", "train.lr=0.02")
    with pytest.raises(ConfigError, match="train.replay: .*: not a run directory"):
        train(config, runs_dir, f"train.replay={tmp_path / 'nothing'}")
    assert len(list(runs_dir.iterdir())) == 1  # nothing written by the refused ones


def test_max_steps_stops_mid_epoch_and_the_schedule_spans_those_steps(write_config, runs_dir) -> None:
    run = train(write_config({"train": {"epochs": 50, "max_steps": 40,
                                        "scheduler": {"name": "cosine", "min_lr_ratio": 0.1}}}), runs_dir)
    s = summary(run)
    assert s["steps"] == 40 and s["stopped"] == "max_steps"
    history = runs.read_jsonl(run / runs.METRICS)
    assert history[-1]["step"] == 40 and history[-1]["lr"] == pytest.approx(0.001)


def test_a_resumed_budget_counts_the_time_already_spent(write_config) -> None:
    exp = load_experiment(write_config({"train": {"max_time": 5, "epochs": 100}}))
    task, model = build(exp, __import__("torch").device("cpu"))
    trainer = Trainer(exp, task, model, Path("."), Reporter(quiet=True), __import__("torch").device("cpu"), 1)
    trainer.save_last = trainer.save_best = trainer.save_epoch = lambda *a: None  # no run directory here
    trainer.state.train_seconds = 5 - 1e-5  # as restored from a checkpoint
    state = trainer.fit()
    assert state.stopped == "time budget" and state.step == 1 and state.epoch == 1


def test_plan_without_budget_or_per_step_schedule_advances_one_step_at_a_time() -> None:
    cfg = TrainConfig(epochs=3, max_time=10)
    assert StepPlan(cfg, 7, per_step_schedule=False).timed is False
    plan = StepPlan(TrainConfig(epochs=3), 7, per_step_schedule=True)
    assert plan.schedule_steps == 21 and plan.advance(1, 0, 99.0) == 1 and plan.stop_reason(21, 1e9) is None
    timed = StepPlan(cfg, 7, per_step_schedule=True)
    assert timed.schedule_steps == VIRTUAL_STEPS
    assert timed.advance(1, 0, 2.5) == VIRTUAL_STEPS // 4 and timed.advance(2, 2500, 2.5) == 0
    assert timed.stop_reason(5, 9.9) is None and timed.stop_reason(5, 10.0) == "time budget"
    fixed = StepPlan(TrainConfig(epochs=3, max_time=10, max_steps=5), 7, per_step_schedule=True)
    assert fixed.timed is False and fixed.schedule_steps == 5 and fixed.stop_reason(5, 0.0) == "max_steps"
