from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.config.loading import load_experiment
from rnnlab.errors import ConfigError
from rnnlab.sweeps.results import Ranking, TrialRecord, to_csv
from rnnlab.sweeps.spec import expand
from rnnlab.sweeps.sweepdir import log_error
from rnnlab.sweeps.sweepfile import load_sweep
from rnnlab.tasks import TASKS

from .conftest import CONFIGS, REPO, SINE_TINY
from .test_cli import assert_user_error

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


def write_sweep(folder: Path, body: dict[str, Any], name: str = "sw") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": SINE_TINY, **body}, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- expansion


def test_grid_expands_every_combination_into_dotted_keys(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {
        "model.name": ["rnn", "gru"], "train.scheduler.name": ["none", "cosine", "step"]}}))
    trials = expand(sweep)
    assert len(trials) == 6
    assert [t.id for t in trials] == ["t001", "t002", "t003", "t004", "t005", "t006"]
    # the first key varies slowest
    assert [tuple(t.values.values()) for t in trials[:4]] == [
        ("rnn", "none"), ("rnn", "cosine"), ("rnn", "step"), ("gru", "none")]
    assert trials[4].config["model"]["name"] == "gru"
    assert trials[4].config["train"]["scheduler"]["name"] == "cosine"  # nested through the dots
    assert trials[4].config["train"]["epochs"] == SINE_TINY["train"]["epochs"]  # the rest is the base
    assert trials[4].run_name() == "t005_name-gru_name-cosine"
    assert trials[4].run_name(2) == "t005-a2_name-gru_name-cosine"


def test_random_draws_are_seeded_and_within_their_distributions(tmp_path: Path) -> None:
    body = {"random": {"trials": 12,
                       "train.lr": {"loguniform": [1.0e-4, 1.0e-1]},
                       "model.dropout": {"uniform": [0.0, 0.5]},
                       "model.num_layers": {"int": [1, 3]},
                       "model.name": {"choice": ["rnn", "lstm", "gru"]}},
            "seed": 7}
    trials = expand(load_sweep(write_sweep(tmp_path, body)))
    assert len(trials) == 12
    for t in trials:
        v = t.values
        assert 1e-4 <= v["train.lr"] <= 1e-1 and v["train.lr"] == float(f"{v['train.lr']:.4g}")
        assert 0.0 <= v["model.dropout"] <= 0.5
        assert v["model.num_layers"] in (1, 2, 3) and isinstance(v["model.num_layers"], int)
        assert v["model.name"] in ("rnn", "lstm", "gru")
        assert t.config["train"]["lr"] == v["train.lr"]
    assert {t.values["model.num_layers"] for t in trials} == {1, 2, 3}  # both ends reachable
    again = expand(load_sweep(write_sweep(tmp_path, body)))
    assert [t.values for t in again] == [t.values for t in trials]
    other = expand(load_sweep(write_sweep(tmp_path, {**body, "seed": 8})))
    assert [t.values for t in other] != [t.values for t in trials]


def test_grid_crossed_with_the_same_random_draws(tmp_path: Path) -> None:
    trials = expand(load_sweep(write_sweep(tmp_path, {
        "grid": {"model.name": ["rnn", "gru"]},
        "random": {"trials": 3, "train.lr": {"loguniform": [1e-3, 1e-2]}}})))
    assert len(trials) == 6
    lrs = [t.values["train.lr"] for t in trials]
    assert lrs[:3] == lrs[3:] and len(set(lrs[:3])) == 3  # every grid point sees the same draws


def test_base_path_is_relative_to_the_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(SINE_TINY))
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.yaml"
    path.write_text(yaml.safe_dump({"base": "../base.yaml", "grid": {"model.hidden_size": [4, 5]}}))
    sweep = load_sweep(path)
    assert sweep.name == "s" and sweep.base == SINE_TINY
    assert [t.config["model"]["hidden_size"] for t in expand(sweep)] == [4, 5]


def test_invalid_combinations_are_reported_up_front_with_the_trial_values(tmp_path: Path) -> None:
    base = {**SINE_TINY, "model": {"name": "rnn", "hidden_size": 4, "nonlinearity": "relu"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": {"model.name": ["rnn", "lstm", "gru"]}}))
    with pytest.raises(ConfigError) as err:
        expand(load_sweep(path))
    assert "trial t002 (model.name=lstm): model.nonlinearity: unknown key" in str(err.value)
    assert "(2 of 3 trials are invalid)" in str(err.value)
    runs = tmp_path / "runs"
    assert_user_error(cli("sweep", str(path), "--runs-dir", str(runs)), str(path), "trial t002")
    assert not runs.exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("body, fragment", [
    ({"grid": {"model.hidden_size": 4}}, "grid.model.hidden_size: must be a non-empty list"),
    ({"grid": {"model.hidden_size": []}}, "grid.model.hidden_size: must be a non-empty list"),
    ({"grid": {"model.hidden_size": [4, 4]}}, "value 4 is listed twice"),
    ({"grid": {"modle.hidden_size": [4]}},
     "grid.modle.hidden_size: unknown section 'modle' (did you mean 'model'?)"),
    ({"grid": {"model.": [4]}}, "grid: bad key 'model.'"),
    ({"grids": {"model.hidden_size": [4]}}, "grids: unknown key (did you mean 'grid'?)"),
    ({}, "nothing to sweep"),
    ({"random": {"train.lr": {"uniform": [0, 1]}}}, "random.trials: is required"),
    ({"random": {"trials": 0, "train.lr": {"uniform": [0, 1]}}}, "random.trials: must be an integer >= 1"),
    ({"random": {"trials": 2, "train.lr": {"gaussian": [0, 1]}}}, "unknown distribution 'gaussian'"),
    ({"random": {"trials": 2, "train.lr": {"loguniform": [0, 1]}}}, "bounds must be > 0"),
    ({"random": {"trials": 2, "train.lr": {"uniform": [1, 0]}}}, "low must be <= high"),
    ({"random": {"trials": 2, "model.num_layers": {"int": [1, 2.5]}}}, "two integers"),
    ({"random": {"trials": 2, "train.lr": [0.1, 0.2]}}, "random.train.lr: expected one of"),
    ({"grid": {"train.lr": [0.1]}, "random": {"trials": 2, "train.lr": {"uniform": [0, 1]}}},
     "random.train.lr: also in grid"),
    ({"grid": {"train.lr": [0.1]}, "metric": "mse"}, "mode: required with metric"),
    ({"grid": {"train.lr": [0.1]}, "metric": "mse", "mode": "lowest"}, "mode: must be 'min' or 'max'"),
    ({"grid": {"train.lr": [0.1]}, "split": "train"}, "split: must be 'val' or 'test'"),
    ({"grid": {"train.lr": [0.1]}, "base": 3}, "base: must be a config path or an inline config"),
    ({"grid": {"train.lr": [0.1]}, "base": "missing.yaml"}, "config file not found"),
])
def test_bad_sweep_files_give_one_line_naming_the_key(tmp_path: Path, body: dict[str, Any],
                                                       fragment: str) -> None:
    path = write_sweep(tmp_path, body)
    result = cli("sweep", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert_user_error(result, fragment)
    assert not (tmp_path / "runs").exists()


def test_cli_option_errors(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"model.hidden_size": [4]}})
    assert_user_error(cli("sweep"), "give a sweep file")
    assert_user_error(cli("sweep", str(path), "--workers", "0"), "--workers: must be an integer from 1 to")
    assert_user_error(cli("sweep", str(path), "--backend", "pbs"),
                      "--backend: must be one of local, ray, slurm, submitit-local")
    assert_user_error(cli("sweep", "--resume", str(tmp_path)), "not a sweep directory")
    assert_user_error(cli("sweep", "--resume", str(tmp_path / "nope")), "sweep directory not found")
    assert_user_error(cli("runs", str(tmp_path / "nope")), "runs directory not found")
    assert_user_error(cli("compare", str(tmp_path / "nope"), str(tmp_path)), "run directory not found")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("sweep*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_file_expands_into_valid_trials(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    base = raw["base"]
    if not isinstance(base, dict):
        base = yaml.safe_load((path.parent / base).read_text())
    task = base["task"]["name"]
    if task not in TASKS:  # e.g. the mnist sweep, before the mnist task is merged
        pytest.skip(f"task {task!r} is not registered in this build")
    from rnnlab.models import MODELS

    recipes = (raw.get("grid") or {}).get("model") or []  # a grid over whole model sections
    missing = [m["name"] for m in recipes if isinstance(m, dict) and m.get("name") not in MODELS]
    if missing:  # e.g. s4d in the long-memory sweep, before that family is merged
        pytest.skip(f"model {missing[0]!r} is not registered in this build")
    assert len(expand(load_sweep(path))) >= 2


# ----------------------------------------------------------------------------- ranking and files


def _record(trial: str, status: str, mse: float | None, **values: Any) -> TrialRecord:
    metrics = {"mse": mse, "acc": None if mse is None else 1 - mse} if mse is not None else {}
    return TrialRecord(trial, values, status=status, val=metrics, test=metrics, metric="mse", mode="min",
                       seconds=1.0, run=f"/runs/{trial}")


def test_ranking_by_the_task_metric_or_the_one_given() -> None:
    records = [_record("t001", "completed", 0.3, h=1), _record("t002", "diverged", None, h=2),
               _record("t003", "completed", 0.1, h=3), _record("t004", "completed", 0.3, h=4)]
    ordered = Ranking(None, None, "val", "s.yaml").apply(records)
    assert [r.trial for r in ordered] == ["t003", "t001", "t004", "t002"]  # ties keep trial order
    assert [r.rank for r in ordered] == [1, 2, 3, None]
    ordered = Ranking("acc", "max", "test", "s.yaml").apply(records)
    assert [r.trial for r in ordered][:1] == ["t003"] and ordered[0].score == pytest.approx(0.9)
    rows = list(csv.DictReader(to_csv(ordered, ["h"]).splitlines()))
    assert [r["trial"] for r in rows] == ["t003", "t001", "t004", "t002"]
    assert rows[0]["h"] == "3" and rows[0]["val_mse"] == "0.1" and rows[3]["rank"] == ""
    with pytest.raises(ConfigError, match="metric: trial t001 has no val metric 'f1'"):
        Ranking("f1", "max", "val", "s.yaml").check(records[0])


def test_log_error_prefers_the_trials_own_error_line(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("test mse=1\nerror: data/x: file is truncated\n")
    assert log_error(log) == "data/x: file is truncated"
    log.write_text("Traceback (most recent call last):\n  ...\nValueError: boom\n"
                   "rnnlab hit an internal error (a bug, not your input); please report it\n")
    assert log_error(log) == "ValueError: boom"
    assert log_error(tmp_path / "missing.log") is None


# ----------------------------------------------------------------------------- running


def _ctrl_c_works() -> None:
    """In the child: SIGINT at its default, whatever this process inherited (a shell that started
    us in the background ignores it), so that the child's Python turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _state(sweep_dir: Path) -> dict[str, Any]:
    return json.loads((sweep_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 4-trial sweep (two diverge: train.max_loss is tiny) started as its own process with one
    worker, stopped with SIGINT once the first trial completed, then resumed with two workers."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = write_sweep(tmp, {"grid": {"model.hidden_size": [4, 6], "train.max_loss": [None, 1.0e-9]}},
                       name="tiny")
    runs_dir = tmp / "runs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "sweep", str(path), "--runs-dir", str(runs_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            preexec_fn=_ctrl_c_works)  # noqa: PLW1509 (no threads here)
    deadline = time.monotonic() + 120
    sweep_dir = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = [p for p in runs_dir.glob("*_tiny") if (p / "summary.json").is_file()]
        if found and _state(found[0])["counts"].get("completed", 0) >= 1:
            sweep_dir = found[0]
            break
        time.sleep(0.2)
    assert sweep_dir is not None, proc.communicate()[0] if proc.poll() is not None else "timed out"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    stopped = _state(sweep_dir)
    first_runs = {p.name for p in sweep_dir.iterdir() if (p / "config.yaml").is_file()}
    resumed = cli("sweep", str(path), "--resume", str(sweep_dir), "--workers", "2")
    return {"path": path, "dir": sweep_dir, "rc": proc.returncode, "out": out, "stopped": stopped,
            "first_runs": first_runs, "resumed": resumed, "final": _state(sweep_dir)}


def test_interrupted_sweep_marks_unfinished_trials(sweep_run: dict[str, Any]) -> None:
    assert sweep_run["rc"] == 130, sweep_run["out"]
    stopped = sweep_run["stopped"]
    assert stopped["status"] == "interrupted"
    statuses = [t["status"] for t in stopped["trials"]]
    assert statuses[0] == "completed" and "running" not in statuses
    assert set(statuses[1:]) <= {"completed", "diverged", "interrupted", "pending"}
    assert "rnnlab sweep --resume" in sweep_run["out"]


def test_resume_runs_only_the_trials_not_completed(sweep_run: dict[str, Any]) -> None:
    result = sweep_run["resumed"]
    assert result.exit_code == 1, result.output  # two trials diverge: the sweep is incomplete
    before = {t["trial"]: t for t in sweep_run["stopped"]["trials"]}
    final = {t["trial"]: t for t in sweep_run["final"]["trials"]}
    rerun = 0
    for trial, old in before.items():
        if old["status"] == "completed":  # not run again
            assert final[trial]["run"] == old["run"] and final[trial]["attempts"] == old["attempts"]
        elif final[trial]["attempts"] == old["attempts"]:
            # the Ctrl-C reached the sweep as this trial's run finished: resume adopts the run
            # that completed (reconcile_records) instead of training it again
            assert final[trial]["status"] == "completed", final[trial]
            run = Path(final[trial]["run"])
            assert run.name in sweep_run["first_runs"]
            assert json.loads((run / "summary.json").read_text())["status"] == "completed"
        else:
            assert final[trial]["attempts"] == old["attempts"] + 1
            rerun += 1
    runs_now = {p.name for p in sweep_run["dir"].iterdir() if (p / "config.yaml").is_file()}
    assert len(runs_now - sweep_run["first_runs"]) == rerun
    assert len(runs_now) == len(set(runs_now))


def test_a_failing_trial_is_recorded_and_the_others_go_on(sweep_run: dict[str, Any]) -> None:
    final = sweep_run["final"]
    assert final["status"] == "incomplete" and final["counts"] == {"completed": 2, "diverged": 2}
    for t in final["trials"]:
        if t["values"]["train.max_loss"] is None:
            assert t["status"] == "completed" and t["error"] is None and t["rank"] in (1, 2)
        else:
            assert t["status"] == "diverged" and "exceeded train.max_loss" in t["error"]
            assert t["rank"] is None


def test_summary_files_and_the_best_run_printed_last(sweep_run: dict[str, Any]) -> None:
    d, final = sweep_run["dir"], sweep_run["final"]
    assert final["metric"] == "mse" and final["mode"] == "min" and final["split"] == "val"
    assert final["keys"] == ["model.hidden_size", "train.max_loss"]
    completed = sorted((t for t in final["trials"] if t["status"] == "completed"), key=lambda t: t["rank"])
    assert completed[0]["score"] <= completed[1]["score"]
    best = completed[0]
    assert final["best"]["trial"] == best["trial"]
    assert sweep_run["resumed"].stdout.strip().splitlines()[-1] == best["run"]
    for t in completed:  # each trial is a normal run directory, and its metrics are the run's
        run = json.loads((Path(t["run"]) / "summary.json").read_text())
        assert run["status"] == "completed" and run["best_val"] == t["val"] and run["test"] == t["test"]
        assert Path(t["run"]).parent == d
        # threads per trial: the base config's, whatever the workers (rerunning trials/<id>.yaml matches)
        assert run["threads"] == SINE_TINY["train"]["threads"]
        assert final["threads_per_trial"] == "1 (the base config's train.threads)"
        assert yaml.safe_load((d / "trials" / f"{t['trial']}.yaml").read_text())["train"]["threads"] == 1
    rows = list(csv.DictReader((d / "summary.csv").read_text().splitlines()))
    assert len(rows) == 4 and rows[0]["trial"] == best["trial"] and rows[0]["rank"] == "1"
    for column in ("model.hidden_size", "train.max_loss", "status", "val_mse", "test_mse", "seconds", "run"):
        assert column in rows[0]
    assert float(rows[0]["val_mse"]) == best["score"] and rows[0]["run"] == best["run"]
    assert sorted(r["status"] for r in rows) == ["completed", "completed", "diverged", "diverged"]
    assert {p.name for p in (d / "plots").iterdir()} == {"model.hidden_size.png", "train.max_loss.png"}
    kept = yaml.safe_load((d / "sweep.yaml").read_text())
    assert kept["base"] == SINE_TINY and kept["grid"]["model.hidden_size"] == [4, 6]
    command = (d / "command.txt").read_text()
    assert f"rnnlab sweep --resume {d.resolve()}" in command and f"{d.resolve()}/sweep.yaml" in command
    exp = load_experiment(d / "trials" / "t002.yaml")
    assert exp.train.max_loss == 1e-9 and exp.model.hidden_size == 4


def test_a_sweep_trial_evaluates_to_its_summary(sweep_run: dict[str, Any]) -> None:
    best = Path(sweep_run["final"]["best"]["run"])
    result = cli("eval", str(best), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"] == json.loads((best / "summary.json").read_text())["test"]


def test_a_metric_the_trials_lack_stops_the_sweep_after_the_first_trial(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"grid": {"model.hidden_size": [4, 6, 8]}, "metric": "accuracy",
                                  "mode": "max"})
    result = cli("sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert_user_error(result, "metric: trial t001 has no val metric 'accuracy' (it has: loss, mse")
    state = _state(next((tmp_path / "runs").glob("*_sw")))
    assert state["status"] == "interrupted" and state["counts"]["completed"] == 1
    assert state["counts"].get("pending", 0) >= 1  # the rest never started


def test_resume_refuses_a_different_sweep(sweep_run: dict[str, Any], tmp_path: Path) -> None:
    other = write_sweep(tmp_path, {"grid": {"model.hidden_size": [4, 5], "train.max_loss": [None, 1.0e-9]}})
    result = cli("sweep", str(other), "--resume", str(sweep_run["dir"]))
    assert_user_error(result, "does not match the sweep in")


def test_runs_lists_the_sweep_trials_newest_first_with_filters(sweep_run: dict[str, Any]) -> None:
    root = sweep_run["dir"].parent
    listed = json.loads(cli("runs", str(root), "--json").stdout)["runs"]
    ids = [r["id"] for r in listed]
    assert all(i.startswith(sweep_run["dir"].name + "/") for i in ids)
    started = [r["started"] or "" for r in listed]
    assert started == sorted(started, reverse=True)
    done = json.loads(cli("runs", str(root), "--status", "completed", "--json").stdout)["runs"]
    assert len(done) == 2 and all(r["metric"] == "mse" and r["value"] > 0 for r in done)
    assert json.loads(cli("runs", str(root), "--model", "gru", "--json").stdout)["runs"] == []
    text = cli("runs", str(root), "--task", "sine")
    assert text.exit_code == 0 and "completed" in text.stdout and "diverged" in text.stdout


def test_compare_shows_config_differences_and_metrics(sweep_run: dict[str, Any]) -> None:
    final = sweep_run["final"]
    runs = [t["run"] for t in final["trials"] if t["status"] == "completed"]
    data = json.loads(cli("compare", *runs, "--json").stdout)
    assert data["differences"]["model.hidden_size"] == [4, 6]
    # the first trial may have run with the 2 threads of a 1-worker sweep before the resume
    assert set(data["differences"]) <= {"model.hidden_size", "train.threads"}
    completed = [t for t in final["trials"] if t["status"] == "completed"]
    assert data["metrics"]["test mse"] == [t["test"]["mse"] for t in completed]
    assert data["best"]["val mse"] == Path(final["best"]["run"]).name
    text = cli("compare", *runs)
    assert text.exit_code == 0 and "model.hidden_size" in text.stdout and "test mse" in text.stdout
    whole = json.loads(cli("compare", str(sweep_run["dir"]), "--json").stdout)  # a sweep directory
    assert len(whole["runs"]) >= 4


@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_a_sweep_seed_outside_what_samplers_take_is_one_line(tmp_path: Path, seed: int) -> None:
    """Found by benchmarks/fuzz.py: a tpe sweep with seed -1 or 2**32 reached numpy's seeding and
    ended in a traceback after the sweep directory existed."""
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"base": SINE_TINY, "seed": seed,
                                    "tpe": {"trials": 1, "train.lr": {"loguniform": [0.001, 0.1]}}}))
    result = CliRunner().invoke(app, ["sweep", str(spec), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 2, result.output
    assert "seed (tpe): must be an integer from 0 to 4294967295" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
