"""ETTh1 at lookback 96 and horizons 96/192/336/720 (setting M, the ETT protocol split, the
checkpoint picked on validation): the shipped configs beside the published figures.

    RNNLAB_DATA=../shared/data python benchmarks/ett.py [--models segrnn linear lstm]
        [--horizons 96 192 336 720] [--epochs N] [--threads 2] [--runs-dir DIR]

Each run is bounded by its config's epochs (or --epochs), so accuracy does not depend on the
machine's load; the seconds of training are printed too (compare those only on a quiet machine).
Published test MSE / MAE (from ../shared/data/README.md: SegRNN, Lin et al. 2023; DLinear, Zeng et
al. 2023; the last-value and training-mean rows are protocol checks) are printed beside.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs
from rnnlab.training.evaluation import evaluate_run

REPO = Path(__file__).resolve().parents[1]
PUBLISHED_MSE = {  # horizon -> model -> MSE, as in ../shared/data/README.md
    96: {"segrnn": 0.368, "linear": 0.386, "last_value": 1.295, "train_mean": 1.110},
    192: {"segrnn": 0.408, "linear": 0.437},
    336: {"segrnn": 0.444, "linear": 0.481},
    720: {"segrnn": 0.446, "linear": 0.519},
}
PUBLISHED_MAE = {96: {"segrnn": 0.395, "linear": 0.400, "last_value": 0.713, "train_mean": 0.796}}


def run_one(model: str, horizon: int, args: argparse.Namespace) -> dict:
    overrides = [f"task.horizon={horizon}", f"train.threads={args.threads}", "logging.plots=false"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    exp = load_experiment(REPO / "configs" / f"{model}_etth1.yaml", overrides, f"{model}_etth1_h{horizon}")
    with contextlib.redirect_stdout(io.StringIO()):  # the quiet reporter's own final line
        run = train_run(exp, args.runs_dir, Reporter(quiet=True))
    summary = json.loads((run / runs.SUMMARY).read_text())
    return {"run": run, "test": summary["test"], "baselines": summary["data"]["baselines"]["test"],
            "epochs": summary["epochs_completed"], "best_epoch": summary["best_epoch"],
            "train_seconds": summary["train_seconds"], "eval_reproduces":
            evaluate_run(run) == summary["test"] if args.check_eval else None}


def cell(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "  -  "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["segrnn", "linear", "lstm"])
    parser.add_argument("--horizons", nargs="+", type=int, default=[96, 192, 336, 720])
    parser.add_argument("--epochs", type=int, default=None, help="override every config's train.epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--check-eval", action="store_true", help="also rerun `rnnlab eval` on each run")
    args = parser.parse_args()
    args.runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="ett_bench_"))
    print(f"ETTh1, M, lookback 96; runs in {args.runs_dir}")
    print(f"{'horizon':>7} {'model':<16} {'MSE':>6} {'MAE':>6}  {'published':>11} {'MAE':>6}  "
          f"{'epochs':>6} {'best':>4} {'train s':>8}")
    for horizon in args.horizons:
        baselines = None
        for model in args.models:
            r = run_one(model, horizon, args)
            baselines = r["baselines"]
            print(f"{horizon:>7} {model:<16} {r['test']['mse']:6.3f} {r['test']['mae']:6.3f}  "
                  f"{cell(PUBLISHED_MSE.get(horizon, {}).get(model)):>11} "
                  f"{cell(PUBLISHED_MAE.get(horizon, {}).get(model)):>6}  {r['epochs']:>6} "
                  f"{r['best_epoch']:>4} {r['train_seconds']:8.1f}"
                  + ("" if r["eval_reproduces"] is None else f"  eval==summary: {r['eval_reproduces']}"),
                  flush=True)
        for name, m in (baselines or {}).items():  # published figures exist for two of them
            published = name if name in ("last_value", "train_mean") else None
            print(f"{horizon:>7} {'(' + name + ')':<16} {m['mse']:6.3f} {m['mae']:6.3f}  "
                  f"{cell(PUBLISHED_MSE.get(horizon, {}).get(published)):>11} "
                  f"{cell(PUBLISHED_MAE.get(horizon, {}).get(published)):>6}", flush=True)


if __name__ == "__main__":
    main()
