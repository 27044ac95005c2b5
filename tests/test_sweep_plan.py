"""``rnnlab sweep --dry-run`` (lists the trials, trains and writes nothing) and the threads a sweep
gives its trials (the trial config's unless --threads says otherwise; the start line says so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rnnlab.sweeps.driver import Driver
from rnnlab.sweeps.results import TrialRecord
from rnnlab.sweeps.spec import expand
from rnnlab.sweeps.sweepdir import Options, threads_source, trial_threads, write_new
from rnnlab.sweeps.sweepfile import load_sweep

from .conftest import SINE_TINY, deep_merge
from .test_cli import assert_user_error
from .test_sweep import cli


def _write(folder: Path, body: dict[str, Any], base: dict[str, Any] = SINE_TINY) -> Path:
    path = folder / "sw.yaml"
    path.write_text(yaml.safe_dump({"base": base, **body}, sort_keys=False))
    return path


def test_dry_run_lists_the_trials_and_writes_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, {"grid": {"model.hidden_size": [4, 6], "train.lr": [0.01, 0.1]}})
    before = sorted(tmp_path.rglob("*"))
    result = cli("sweep", str(path), "--dry-run", "--runs-dir", str(tmp_path / "runs"), "--workers", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert "backend local, 2 worker(s); nothing is trained or written" in lines[0]
    assert lines[1] == "4 trial(s) to run:"
    assert lines[2].split() == ["t001", "t001_hidden_size-4_lr-0.01:", "model.hidden_size=4,",
                                "train.lr=0.01", "(threads", "1)"]
    assert [line.split()[0] for line in lines[2:]] == ["t001", "t002", "t003", "t004"]
    assert "model.hidden_size=6, train.lr=0.1" in lines[5]
    assert sorted(tmp_path.rglob("*")) == before  # no sweep directory, no runs


def test_dry_run_of_a_search_and_of_a_resume(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    path = _write(tmp_path, {"tpe": {"trials": 5, "pruner": "median",
                                     "train.lr": {"loguniform": [1.0e-3, 1.0e-1]}}})
    out = cli("sweep", str(path), "--dry-run").stdout.splitlines()
    assert out[1].startswith("optuna tpe study: 5 trials, pruner median")
    assert out[2].split() == ["train.lr:", "loguniform", "0.001,", "0.1"]
    grid = _write(tmp_path, {"grid": {"model.hidden_size": [4, 6]}})
    sweep_dir = tmp_path / "done"
    (sweep_dir / "trials").mkdir(parents=True)
    sweep = load_sweep(grid)
    trials = expand(sweep)
    write_new(sweep_dir, sweep, trials, Options(), 1)
    records = [TrialRecord(t.id, t.values) for t in trials]
    records[0].status = "completed"  # as a stopped sweep leaves it: t002 still to run

    class Backend:
        name, cores, threads = "local", 2, 1

    Driver(sweep, trials, records, sweep_dir, Backend(), Options(), print).save()
    state = (sweep_dir / "summary.json").read_text()
    out = cli("sweep", "--resume", str(sweep_dir), "--dry-run").stdout.splitlines()
    assert f"in {sweep_dir}" in out[0] and out[1] == "1 trial(s) to run:" and out[2].split()[0] == "t002"
    assert (sweep_dir / "summary.json").read_text() == state
    assert_user_error(cli("sweep", str(grid), "--dry-run", "--threads", "0"), "--threads: must be >= 1")


def test_trials_keep_the_base_configs_threads_unless_told(tmp_path: Path) -> None:
    unset = deep_merge(SINE_TINY, {"train": {"threads": None}})
    cases = [  # (base, sweep body, --threads) -> threads of each trial, and the start line's words
        (SINE_TINY, {}, None, [1, 1], "1 (the base config's train.threads)"),
        (unset, {}, None, [3, 3], "3 (6 cores / 2 workers)"),
        (SINE_TINY, {}, 2, [2, 2], "2 (--threads)"),
        (SINE_TINY, {"grid": {"train.threads": [1, 2]}}, None, [1, 2], "as swept (train.threads)"),
    ]

    class Backend:
        name, cores, threads = "local", 6, 3

    for base, body, option, expected, said in cases:
        path = _write(tmp_path, body or {"grid": {"model.hidden_size": [4, 6]}}, base)
        sweep = load_sweep(path)
        options = Options(workers=2, threads=option)
        trials = expand(sweep)
        assert [trial_threads(t, options, Backend.threads) for t in trials] == expected
        assert threads_source(sweep, options, Backend()) == said
    # what the sweep writes for each trial is what it runs with: trials/<id>.yaml reruns it alike
    sweep_dir = tmp_path / "sweep"
    (sweep_dir / "trials").mkdir(parents=True)
    sweep = load_sweep(_write(tmp_path, {"grid": {"model.hidden_size": [4]}}, unset))
    write_new(sweep_dir, sweep, expand(sweep), Options(workers=2), 3)
    assert yaml.safe_load((sweep_dir / "trials" / "t001.yaml").read_text())["train"]["threads"] == 3
    lines: list[str] = []
    busy = load_sweep(_write(tmp_path, {"grid": {"model.hidden_size": [4]}},
                             deep_merge(SINE_TINY, {"train": {"threads": 4}})))
    driver = Driver(busy, expand(busy), [], sweep_dir, Backend(), Options(workers=2), lines.append)
    driver.describe(driver.trials)
    assert lines == ["backend local (6 cores), 2 worker(s), threads per trial: 4 (the base config's "
                     "train.threads)", "note: 2 workers x 4 threads > 6 cores: the cores are oversubscribed"]
