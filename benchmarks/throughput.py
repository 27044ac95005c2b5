"""Training throughput of one config across devices and precisions, through rnnlab's own loop.

    python benchmarks/throughput.py configs/lstm_mnist.yaml --device cpu --device cuda \\
        --precision fp32 --precision bf16 --precision fp16 --steps 100

Each combination trains 2 epochs of ``--steps`` optimizer steps into a temporary runs directory;
the first epoch is warm-up (allocator, cuDNN plans, caches), the second is timed. Prints one
markdown row per combination: samples/s, ms per step and the speed-up over the first row.
Combinations the device cannot run (fp16 on CPU, cuda without a GPU) are reported, not run.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.errors import RnnlabError
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs


def measure(config: Path, overrides: list[str], device: str, precision: str, steps: int) -> dict:
    exp = load_experiment(config, [*overrides, f"train.device={device}", f"train.precision={precision}",
                                   f"train.steps_per_epoch={steps}", "train.epochs=2",
                                   "train.early_stopping=null", "logging.plots=false"])
    with tempfile.TemporaryDirectory() as tmp:
        run = train_run(exp, Path(tmp), Reporter(quiet=True, stream=io.StringIO()))
        timed = runs.read_jsonl(run / runs.METRICS)[-1]
        summary = runs.read_summary(run)
    return {"samples_per_s": timed["samples_per_s"],
            "ms_per_step": 1000 * timed["train_seconds"] / timed["steps"],
            "device": summary.get("gpu") or summary["cpu"], "threads": summary["threads"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--device", action="append", choices=["cpu", "cuda"], help="repeatable")
    parser.add_argument("--precision", action="append", choices=["fp32", "bf16", "fp16"], help="repeatable")
    parser.add_argument("--steps", type=int, default=50, help="timed optimizer steps")
    args = parser.parse_args()
    print(f"{args.config} {' '.join(args.overrides)}, {args.steps} timed steps")
    print("| device | precision | samples/s | ms/step | speed-up | hardware (threads) |")
    print("|---|---|---:|---:|---:|---|")
    first = None
    for device in args.device or ["cpu"]:
        for precision in args.precision or ["fp32"]:
            try:
                r = measure(args.config, args.overrides, device, precision, args.steps)
            except RnnlabError as exc:
                print(f"| {device} | {precision} | not run: {exc.line()} | | | |")
                continue
            first = first or r["samples_per_s"]
            print(f"| {device} | {precision} | {r['samples_per_s']:,.0f} | {r['ms_per_step']:.2f} | "
                  f"{r['samples_per_s'] / first:.2f}x | {r['device']} ({r['threads']}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
