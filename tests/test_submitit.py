"""The submitit backends: ``--backend submitit-local`` runs the Slurm code path on this machine.

One grid sweep runs under submitit's local executor while the test preempts a trial the way Slurm
does (SIGUSR2 to its job); the job is requeued and the trial resumes from its ``last.pt``. The
sweep must end with the same trials and metrics as the plain local backend's."""

from __future__ import annotations

import builtins
import csv
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from rnnlab.sweeps.runner import Options, run_sweep

from .conftest import SINE_TINY, deep_merge
from .test_cli import assert_user_error
from .test_sweep import cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes in /proc")

# epochs of about a second, so the preemption lands while the trial trains
BASE = deep_merge(SINE_TINY, {"task": {"window": 16, "n_points": 12000}, "model": {"hidden_size": 32},
                              "train": {"epochs": 4}})


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"model.hidden_size": [32, 24]},
                                    "slurm": {"time": "0:30:00", "cpus": 1}}))
    return path


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    status = (Path("/proc") / str(pid) / "status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def _preempt(sweep_root: Path, run_name: str, deadline: float) -> Optional[int]:
    """Once the trial has finished an epoch: SIGUSR2 to the submitit job running it (what Slurm sends
    before preempting a job); the job's pid."""
    while time.monotonic() < deadline:
        runs = [p for p in sweep_root.glob(f"*/*_{run_name}") if (p / "metrics.jsonl").is_file()]
        if runs and (runs[0] / "metrics.jsonl").read_text().strip():
            trial = next((pid for pid in _pids() if "rnnlab.cli.trial" in _cmdline(pid)
                          and f"--name {run_name}" in _cmdline(pid)), None)
            if trial is not None:
                job = _parent(trial)
                assert "submitit" in _cmdline(job), _cmdline(job)
                os.kill(job, signal.SIGUSR2)
                return job
        time.sleep(0.1)
    return None


def _rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    rows = csv.DictReader((sweep_dir / "summary.csv").read_text().splitlines())
    keep = ("trial", "model.hidden_size", "status", "val_mse", "test_mse")
    return {row["trial"]: {k: row[k] for k in keep} for row in rows}


def test_a_preempted_trial_is_requeued_and_resumed_with_the_local_backends_results(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    path = _write(tmp_path)
    lines: list[str] = []
    result: dict[str, Any] = {}

    def sweep() -> None:
        result["outcome"] = run_sweep(path, tmp_path / "sub", None,
                                      Options(workers=2, backend="submitit-local"), lines.append)

    worker = threading.Thread(target=sweep)
    worker.start()
    job = _preempt(tmp_path / "sub", "t001_hidden_size-32", time.monotonic() + 600)
    worker.join(timeout=900)
    assert job is not None, lines
    outcome = result["outcome"]
    assert outcome.status == "completed", lines
    state = json.loads((outcome.sweep_dir / "summary.json").read_text())
    assert state["backend"] == "submitit-local" and state["counts"] == {"completed": 2}
    first = next(t for t in state["trials"] if t["trial"] == "t001")
    assert first["attempts"] == 1  # requeued by submitit, not rerun by the sweep
    run = Path(first["run"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and len(summary["resumed"]) == 1
    epochs = [json.loads(r)["epoch"] for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]  # continued, nothing trained twice
    log = (outcome.sweep_dir / "logs" / "t001_hidden_size-32.log").read_text()
    assert f"requeued to resume {run}" in log
    assert (outcome.sweep_dir / "submitit").is_dir()
    local = run_sweep(path, tmp_path / "local", None, Options(workers=2), lines.append)
    assert local.status == "completed"
    assert _rows(outcome.sweep_dir) == _rows(local.sweep_dir)


def test_missing_submitit_is_one_line_naming_the_extra(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_submitit(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "submitit" or name.startswith("submitit."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_submitit)
    path = _write(tmp_path)
    for backend in ("slurm", "submitit-local"):
        result = cli("sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--backend", backend)
        assert_user_error(result, f"--backend {backend}: needs submitit: pip install 'rnnlab[slurm]'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("where", "value", "message"), [
    ("file", {"gpu": 1}, "slurm.gpu: unknown resource (did you mean 'gpus'?)"),
    ("file", {"time": "soon"}, "slurm.time: must be the time limit per trial"),
    ("file", {"mem": "lots"}, "slurm.mem: must be memory per trial"),
    ("cli", "cpus=0", "--slurm: cpus: must be CPUs per trial"),
    ("cli", "partition", "--slurm: expected KEY=VALUE"),
])
def test_bad_slurm_resources_are_one_line(tmp_path: Path, where: str, value: Any, message: str) -> None:
    path = tmp_path / "sw.yaml"
    body: dict[str, Any] = {"base": SINE_TINY, "grid": {"model.hidden_size": [4]}}
    if where == "file":
        body["slurm"] = value
    path.write_text(yaml.safe_dump(body))
    extra = ["--slurm", value] if where == "cli" else []
    result = cli("sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--backend", "slurm", *extra)
    assert_user_error(result, message)
    assert not (tmp_path / "runs").exists()
