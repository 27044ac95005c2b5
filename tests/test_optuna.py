"""Optuna searches in the sweep driver: `tpe:`/`cmaes:` sections, pruning through the graceful
stop, and a study that a resumed sweep continues (trial numbers go on; none lost or run twice)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.errors import ConfigError
from rnnlab.sweeps.runner import Options, run_sweep
from rnnlab.sweeps.sweepfile import load_sweep

from .conftest import SINE_TINY, deep_merge
from .test_cli import assert_user_error

runner = CliRunner()
SPACE = {"train.lr": {"loguniform": [1.0e-3, 3.0e-2]}, "model.hidden_size": {"int": [4, 8]},
         "model.name": {"choice": ["lstm", "gru"]}}


def write_sweep(folder: Path, body: dict[str, Any]) -> Path:
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump({"name": "search", "base": SINE_TINY, **body}, sort_keys=False))
    return path


def test_tpe_and_cmaes_sections_parse_like_random(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, {"tpe": {"trials": 5, "pruner": "median", **SPACE}}))
    assert sweep.search is not None and sweep.search.sampler == "tpe" and sweep.search.pruner == "median"
    assert sweep.keys == list(SPACE) and sweep.points() == []
    assert sweep.to_dict()["tpe"]["trials"] == 5
    body = {"cmaes": {"trials": 2, "train.lr": {"uniform": [0.001, 0.01]}}}
    cmaes = load_sweep(write_sweep(tmp_path, body))
    assert cmaes.search is not None and cmaes.search.pruner == "none"


@pytest.mark.parametrize("body, message", [
    ({"tpe": {"trials": 3, "pruner": "medain", **SPACE}},
     "tpe.pruner: must be one of none, median, hyperband, got 'medain' (did you mean 'median'?)"),
    ({"tpe": {"pruner": "median", **SPACE}}, "tpe.trials: is required"),
    ({"tpe": {"trials": 3, "pruner": "none"}}, "tpe: give at least one dotted key"),
    ({"tpe": {"trials": 3, **SPACE}, "grid": {"train.epochs": [1, 2]}}, "tpe: an Optuna search chooses"),
    ({"tpe": {"trials": 3, **SPACE}, "cmaes": {"trials": 3, **SPACE}}, "cmaes: give one Optuna search"),
    ({"cmaes": {"trials": 3, "train.lr": {"loguniform": [0, 1]}}},
     "cmaes.train.lr.loguniform: bounds must be > 0"),
])
def test_bad_search_sections_are_one_line(tmp_path: Path, body: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_sweep(write_sweep(tmp_path, body))


def test_missing_optuna_is_one_line_and_writes_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_optuna(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "optuna":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    path = write_sweep(tmp_path, {"tpe": {"trials": 2, **SPACE}})
    result = runner.invoke(app, ["sweep", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert_user_error(result, f"error: {path}: tpe: needs Optuna: pip install 'rnnlab[optuna]'")
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- pruning


class FakeBackend:
    """Starts nothing: the test plays the trial's part by writing its run directory."""

    name, threads, cores, stop_file = "local", 1, 1, None

    def __init__(self) -> None:
        self.started: list[list[str]] = []
        self.interrupted: list[str] = []

    def start(self, args: list[str], log: Path, threads: int) -> str:
        self.started.append(args)
        return f"h{len(self.started)}"

    def interrupt(self, handle: str) -> None:
        self.interrupted.append(handle)


def test_a_trial_worse_than_the_median_is_stopped_and_recorded_pruned(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from rnnlab.sweeps.optuna_search import SearchDriver
    from rnnlab.sweeps.optuna_study import distributions, open_study, prepare

    sweep = load_sweep(write_sweep(tmp_path, {"tpe": {"trials": 3, "pruner": "median", **SPACE}}))
    prepare(sweep)
    assert (sweep.metric, sweep.mode) == ("mse", "min")  # the task's own, from its spec
    sweep_dir = tmp_path / "sw"
    for sub in ("trials", "logs", "plots"):
        (sweep_dir / sub).mkdir(parents=True)
    study = open_study(sweep, sweep_dir)
    first = study.ask(distributions(sweep))
    for epoch in (1, 2, 3):
        first.report(0.1, epoch)
    study.tell(first, 0.1)
    backend, lines = FakeBackend(), []
    driver = SearchDriver(sweep, [], sweep_dir, backend, Options(), lines.append, study)
    assert [r.status for r in driver.records] == ["completed"]
    driver.launch()  # asks Optuna for trial 1 and starts it
    (handle,) = driver.running
    job = driver.running[handle]
    assert job.trial.id == "t002" and (sweep_dir / "trials" / "t002.yaml").is_file()
    run = sweep_dir / f"20260101-000000_{job.run_name}"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_mse": 5.0}) + "\n")
    driver.poll()
    assert backend.interrupted == [handle]  # stopped the graceful way: SIGINT, checkpoint kept
    assert any("t002 pruned after epoch 1" in line for line in lines)
    (run / "summary.json").write_text(json.dumps({"status": "interrupted", "best_val": {"mse": 5.0}}))
    record = driver.end(handle, 130, None, stopped=False)
    assert record.status == "pruned" and record.error.startswith("pruned after epoch 1 (median), stopped ")
    trial = study.get_trials()[1]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values == {1: 5.0}
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["completed", "pruned"]


def test_epochs_a_trial_wrote_after_the_last_poll_reach_the_study(tmp_path: Path) -> None:
    # A short trial can write its epochs and end between two polls; its intermediate values are
    # what the median pruner compares later trials against, so they are reported when it ends.
    optuna = pytest.importorskip("optuna")
    from rnnlab.sweeps.optuna_search import SearchDriver
    from rnnlab.sweeps.optuna_study import open_study, prepare

    sweep = load_sweep(write_sweep(tmp_path, {"tpe": {"trials": 2, "pruner": "median", **SPACE}}))
    prepare(sweep)
    sweep_dir = tmp_path / "sw"
    for sub in ("trials", "logs", "plots"):
        (sweep_dir / sub).mkdir(parents=True)
    study = open_study(sweep, sweep_dir)
    backend, lines = FakeBackend(), []
    driver = SearchDriver(sweep, [], sweep_dir, backend, Options(), lines.append, study)
    driver.launch()
    (handle,) = driver.running
    run = sweep_dir / f"20260101-000000_{driver.running[handle].run_name}"
    run.mkdir()
    driver.poll()  # nothing written yet
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "val_mse": v}) + "\n"
                                               for e, v in ((1, 0.3), (2, 0.2))))
    (run / "summary.json").write_text(json.dumps({"status": "completed", "best_val": {"mse": 0.2}}))
    record = driver.end(handle, 0, None, stopped=False)  # ended before the next poll
    assert record.status == "completed"
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.2
    assert trial.intermediate_values == {1: 0.3, 2: 0.2}


# ----------------------------------------------------------------------------- resume


def test_an_interrupted_search_resumes_the_same_study(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    base = deep_merge(SINE_TINY, {"train": {"epochs": 4}})
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"name": "search", "base": base,
                                    "tpe": {"trials": 3, "pruner": "median", **SPACE}}))
    said: list[str] = []

    def say(line: str) -> None:  # Ctrl-C the moment the first trial is seen completed
        said.append(line)
        if " completed in " in line and "stop" not in said:
            said.append("stop")
            raise KeyboardInterrupt

    first = run_sweep(path, tmp_path / "runs", None, Options(workers=2), say)
    assert first.status == "interrupted"
    sweep_dir = first.sweep_dir
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sweep_dir / "optuna.journal")))
    before = optuna.load_study(study_name="search", storage=storage).get_trials()
    assert len(before) == 2  # two asked (two workers)
    # the trial seen completing was never told (the stop came first); the other was stopped
    # (still running in the study) or had finished too
    assert "RUNNING" in [t.state.name for t in before]
    assert {t.state.name for t in before} <= {"RUNNING", "COMPLETE"}
    result = runner.invoke(app, ["sweep", "--resume", str(sweep_dir), "--workers", "2"])
    assert result.exit_code == 0, result.output
    after = optuna.load_study(study_name="search", storage=storage).get_trials()
    assert [t.number for t in after] == [0, 1, 2]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in after)
    assert [t.params for t in after[:2]] == [t.params for t in before]
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [t["trial"] for t in summary["trials"]] == ["t001", "t002", "t003"]
    assert summary["status"] == "completed" and summary["resumed"]
    for trial, record in zip(after, summary["trials"]):
        if trial.state.name == "COMPLETE":
            assert trial.value == pytest.approx(record["score"])
    # a trial that had completed is adopted from its files, not run again: one completed run for
    # each complete trial and none twice (the median pruner may stop t003, whose run is then
    # interrupted, depending on how the two workers' epochs interleave)
    completed = [p for p in sweep_dir.glob("*_t00*") if (p / "summary.json").is_file()
                 and json.loads((p / "summary.json").read_text())["status"] == "completed"]
    names = [p.name.split("_")[1].split("-")[0] for p in completed]
    assert len(names) == len(set(names))
    assert {f"t{t.number + 1:03d}" for t in after if t.state.name == "COMPLETE"} <= set(names)
    assert (sweep_dir / "plots" / "optuna_history.png").is_file()
