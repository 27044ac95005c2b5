from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.distributed import shard
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs
from rnnlab.tasks.base import Batch

from .conftest import REPO


def test_shard_takes_contiguous_rows_of_every_batch_tensor() -> None:
    x, y = torch.arange(10).view(5, 2), torch.arange(5)
    batch = Batch(x, y, lengths=torch.tensor([2, 2, 1, 2, 1]),
                  extra={"mask": torch.ones(5, 3), "vocab": torch.zeros(7), "reset_state": True})
    parts = [shard(batch, rank, 2) for rank in range(2)]
    assert [p.y.tolist() for p in parts] == [[0, 1], [2, 3, 4]]
    assert torch.equal(torch.cat([p.x for p in parts]), x)
    assert [p.lengths.tolist() for p in parts] == [[2, 2], [1, 2, 1]]
    assert [p.extra["mask"].shape[0] for p in parts] == [2, 3]
    assert all(p.extra["vocab"].shape == (7,) and p.extra["reset_state"] is True for p in parts)
    small = Batch(x[:1], y[:1])  # fewer rows than ranks: every rank computes on the whole batch
    assert all(shard(small, rank, 2) is small for rank in range(2))


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=240, check=False)


def test_torchrun_two_cpu_processes_make_one_normal_run(write_config, tmp_path: Path) -> None:
    cfg = write_config({"task": {"mode": "seq2seq", "seq_len": 40, "stride": 10},
                        "train": {"epochs": 2, "batch_size": 8}, "logging": {"plots": True}})
    # tests/ddp_probe.py is `python -m rnnlab` that then reports the threads still running
    ddp = run_cli(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   str(REPO / "tests" / "ddp_probe.py"), "train", str(cfg), "--runs-dir", "ddp", "--quiet"],
                  tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    threads = [line for line in ddp.stderr.splitlines() if " threads: " in line]
    assert len(threads) == 2, ddp.stderr[-3000:]
    # the process group was really destroyed: no gloo worker left to race the interpreter's exit
    assert not any("gloo" in line for line in threads), threads
    made = list((tmp_path / "ddp").iterdir())
    assert len(made) == 1  # exactly one run directory, written by rank 0
    run = made[0]
    assert ddp.stdout.strip().splitlines()[-1] == str(Path("ddp") / run.name)
    assert ddp.stdout.count(run.name) == 1  # only rank 0 prints
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert summary["status"] == "completed"
    assert summary["distributed"] == {"world_size": 2, "backend": "gloo", "threads_per_process": 1}
    rows = runs.read_jsonl(run / runs.METRICS)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"learning_curves.png", "forecast.png"} <= {p.name for p in (run / "plots").iterdir()}
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "checkpoints" / "last.pt").is_file()

    single = train_run(load_experiment(cfg), tmp_path / "one", Reporter(quiet=True))
    ref = runs.read_jsonl(single / runs.METRICS)
    # the same global batches, split over 2 ranks with gradients averaged: the same optimisation
    # up to float summation order; the epoch's train loss is the mean over both ranks' samples
    for a, b in zip(rows, ref):
        assert a["steps"] == b["steps"]
        for key in ("train_loss", "val_mse", "grad_norm_mean"):
            assert abs(a[key] - b[key]) <= 1e-3 * abs(b[key]), (key, a[key], b[key])
