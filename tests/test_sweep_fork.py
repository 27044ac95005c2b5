"""Local trials forked from the preloaded server (``rnnlab.sweeps.forking``) run exactly as fresh
trial processes do: same metrics, same logs and run directories, stopped by SIGINT and with the
sweep, and the old one-process-per-trial path where forking is off."""

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
from rnnlab.sweeps import forking

from .conftest import REPO, SINE_TINY

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked trials: Linux only")
runner = CliRunner()
METRICS = ("val_mse", "test_mse", "val_loss", "test_loss", "best_epoch")


def sweep_file(tmp: Path, train: dict[str, Any] | None = None) -> Path:
    base = dict(SINE_TINY, train=dict(SINE_TINY["train"], **(train or {})))
    path = tmp / "fork.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": {"model.name": ["rnn", "gru"]}}, sort_keys=False))
    return path


def run_sweep(path: Path, runs_dir: Path) -> tuple[Path, list[dict[str, str]]]:
    result = runner.invoke(app, ["sweep", str(path), "--runs-dir", str(runs_dir), "--workers", "1"])
    assert result.exit_code == 0, result.output
    sweep_dir = next(runs_dir.glob("*_fork"))
    with open(sweep_dir / "summary.csv", newline="") as fh:
        return sweep_dir, list(csv.DictReader(fh))


def test_forked_trials_give_the_metrics_of_fresh_processes(tmp_path: Path, monkeypatch) -> None:
    path = sweep_file(tmp_path)
    forked: list[int] = []
    real_start = forking.Server.start

    def counting(self, *args: Any, **kwargs: Any):
        trial = real_start(self, *args, **kwargs)
        forked.append(trial.pid)
        return trial

    monkeypatch.setattr(forking.Server, "start", counting)
    monkeypatch.setenv(forking.FORK_ENV, "1")
    fork_dir, fork_rows = run_sweep(path, tmp_path / "forked")
    assert len(forked) == 2 and os.getpid() not in forked  # both trials came from the server
    monkeypatch.setenv(forking.FORK_ENV, "0")
    _, fresh_rows = run_sweep(path, tmp_path / "fresh")
    assert len(forked) == 2  # forking off: no server at all
    assert [r["status"] for r in fork_rows] == ["completed", "completed"]
    keys = [k for k in fork_rows[0] if any(k.endswith(m) for m in METRICS)]
    assert keys, fork_rows[0]
    assert [{k: r[k] for k in keys} for r in fork_rows] == [{k: r[k] for k in keys} for r in fresh_rows]
    # the trial's log and run directory are where a fresh process puts them
    logs = sorted((fork_dir / "logs").glob("t00*.log"))
    assert len(logs) == 2 and all("test loss=" in log.read_text() for log in logs)
    for row in fork_rows:
        summary = json.loads((Path(row["run"]) / "summary.json").read_text())
        assert summary["status"] == "completed"


def test_a_killed_sweep_stops_its_forked_trials(tmp_path: Path) -> None:
    """SIGKILL to the sweep: the server dies with it and its trial is interrupted (closes its run)."""
    path = sweep_file(tmp_path, {"epochs": 10_000, "steps_per_epoch": 2})
    runs_dir = tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env[forking.FORK_ENV] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "sweep", str(path), "--runs-dir", str(runs_dir),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    metrics = None
    while time.monotonic() < deadline and metrics is None:
        found = [p for p in runs_dir.glob("*_fork/*_t001_*/metrics.jsonl") if p.stat().st_size > 0]
        metrics = found[0] if found else None
        time.sleep(0.2)
    assert metrics is not None and proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    summary = metrics.parent / "summary.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (summary.is_file() and json.loads(summary.read_text())
                                                 .get("status") not in (None, "running")):
        time.sleep(0.2)
    assert json.loads(summary.read_text())["status"] == "interrupted"


def test_a_launcher_that_cannot_start_falls_back_to_a_process_per_trial(tmp_path: Path, monkeypatch) -> None:
    def broken(self) -> None:
        self.alive = False
        raise OSError("the preloaded trial launcher did not start")

    monkeypatch.setattr(forking.Server, "ready", broken)
    monkeypatch.setenv(forking.FORK_ENV, "1")
    _, rows = run_sweep(sweep_file(tmp_path), tmp_path / "runs")
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert not forking._early  # the launcher that failed was not left behind
