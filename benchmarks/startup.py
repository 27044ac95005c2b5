"""Measure a trial's fixed cost (issue 25, item 6): the wall time of a one-step `lstm_sine` run against
`python -c "import torch"` on the same machine, run alternately so both see the same load.

    python benchmarks/startup.py               # 5 rounds: medians and the difference (target <= 1.5 s)
    python benchmarks/startup.py --rounds 9    # more rounds
    python benchmarks/startup.py --sweep       # also the 6-trial sweep_sine_families.yaml, 1 worker:
                                               # forked trials against one process per trial
                                               # (RNNLAB_SWEEP_FORK=0), alternately (target: 2x)

It also times `rnnlab --help` and `rnnlab list` (target: each under 1 s). Every command runs in a
fresh temporary directory (its runs are thrown away). Figures are only meaningful on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
ONE_STEP = ["train", str(REPO / "configs" / "lstm_sine.yaml"), "--set", "train.epochs=1",
            "--set", "train.steps_per_epoch=1", "--set", "train.threads=1", "--quiet"]
SWEEP = ["sweep", str(REPO / "configs" / "sweep_sine_families.yaml"), "--workers", "1", "--quiet"]


def cpu() -> str:
    """The CPU's model name and the cores this process may use."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} cores usable"


def wall(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds ``argv`` takes from start to exit; a failing command stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def rnnlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "rnnlab", *args]


def median_line(name: str, times: list[float]) -> str:
    each = ", ".join(f"{t:.2f}" for t in times)
    return f"{name:<28} median {statistics.median(times):6.2f} s  (runs: {each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each (default 5)")
    parser.add_argument("--sweep", action="store_true", help="also time the 6-trial sine sweep, 1 worker")
    parser.add_argument("--sweep-rounds", type=int, default=3,
                        help="alternating runs of each sweep variant (default 3)")
    args = parser.parse_args()
    print(f"CPU: {cpu()}; python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="rnnlab-startup-") as tmp:
        cwd = Path(tmp)
        wall(rnnlab("--help"), cwd)  # warm the file cache (and .pyc files) before measuring
        torch_times, run_times = [], []
        for _ in range(args.rounds):
            torch_times.append(wall([sys.executable, "-c", "import torch"], cwd))
            run_times.append(wall(rnnlab(*ONE_STEP), cwd))
        print(median_line('python -c "import torch"', torch_times))
        print(median_line("one-step lstm_sine run", run_times))
        extra = statistics.median(run_times) - statistics.median(torch_times)
        verdict = "ok" if extra <= 1.5 else "OVER"
        print(f"{'fixed cost over torch':<28} {extra:6.2f} s  (target <= 1.50 s: {verdict})")
        for name, argv in (("rnnlab --help", rnnlab("--help")), ("rnnlab list", rnnlab("list"))):
            times = [wall(argv, cwd) for _ in range(args.rounds)]
            verdict = "ok" if statistics.median(times) < 1.0 else "OVER"
            print(median_line(name, times) + f"  (target < 1 s: {verdict})")
        if args.sweep:
            forked, fresh = [], []
            for _ in range(args.sweep_rounds):
                forked.append(wall(rnnlab(*SWEEP), cwd, dict(ENV, RNNLAB_SWEEP_FORK="1")))
                fresh.append(wall(rnnlab(*SWEEP), cwd, dict(ENV, RNNLAB_SWEEP_FORK="0")))
            print(median_line("sweep, process per trial", fresh))
            print(median_line("sweep, forked trials", forked))
            speedup = statistics.median(fresh) / statistics.median(forked)
            verdict = "ok" if speedup >= 2 else "UNDER"
            print(f"{'sweep speed-up':<28} {speedup:6.2f} x  (target >= 2: {verdict})")


if __name__ == "__main__":
    main()
