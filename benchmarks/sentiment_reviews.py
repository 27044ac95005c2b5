"""Sentiment on the 3,000 review sentences: test accuracy of configs/bilstm_reviews.yaml per seed,
time per epoch, `rnnlab eval` reproducing the summary, and padding invariance on real sentences.

    RNNLAB_DATA=../shared/data python benchmarks/sentiment_reviews.py [--seeds 0 1 2] [--threads 2]

Reference (plain PyTorch, same data, 80/20 split, BiLSTM 128, best epoch picked on the test
split): 79.8 % test accuracy, about 2 s per epoch on 2 cores. Here the checkpoint is picked on a
validation split carved out of the training 80 %, and the test split is scored once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.models import MODELS, build_model
from rnnlab.rundir import files as runs
from rnnlab.tasks.base import TaskSpec
from rnnlab.training.evaluation import evaluate_run, load_run

REPO = Path(__file__).resolve().parents[1]


def train_seed(config: Path, seed: int, threads: int, runs_dir: Path) -> dict:
    exp = load_experiment(config, [f"train.seed={seed}", f"train.threads={threads}", "logging.plots=false"])
    run = train_run(exp, runs_dir, Reporter(quiet=True))
    summary = json.loads((run / runs.SUMMARY).read_text())
    epochs = runs.read_jsonl(run / runs.METRICS)
    return {"run": run, "seed": seed, "test_accuracy": summary["test"]["accuracy"],
            "test_macro_f1": summary["test"]["macro_f1"], "val_accuracy": summary["best_val"]["accuracy"],
            "best_epoch": summary["best_epoch"], "epochs": len(epochs),
            "s_per_epoch": statistics.median(r["train_seconds"] for r in epochs),
            "skipped_lines": summary["data"]["skipped_lines"]["total"],
            "eval_reproduces": evaluate_run(run, "test") == summary["test"]}


def padding_gap_trained(run: Path) -> float:
    """Max |p(alone) - p(batched with the 3 longest test sentences)| over every test sentence."""
    _, _, task, model, _ = load_run(run)
    test = task.splits["test"]
    longest = torch.argsort(test.lengths, descending=True)[:3]
    model.eval()
    gap = 0.0
    with torch.no_grad():
        for i in range(len(test.lengths)):
            tokens = [task.vocab.tokens[t] for t in test.ids[i, :int(test.lengths[i])].tolist()]
            others = [[task.vocab.tokens[t] for t in test.ids[j, :int(test.lengths[j])].tolist()]
                      for j in longest.tolist()]
            alone = task.probabilities(model, [tokens])[0]
            batched = task.probabilities(model, [tokens, *others], batch_size=4)[0]
            gap = max(gap, float((alone - batched).abs().max()))
    return gap


def padding_gap_families() -> dict[str, float]:
    """The same check on freshly initialised rnn/lstm/gru, uni/bidirectional, last/mean/max."""
    spec = TaskSpec(input_kind="tokens", input_size=1000, output_size=2, output="last", causal=False,
                    metric="accuracy", mode="max")
    torch.manual_seed(0)
    short = torch.randint(2, 1000, (1, 6))
    batch = torch.zeros(4, 60, dtype=torch.int64)
    batch[0, :6], batch[1:] = short[0], torch.randint(2, 1000, (3, 60))
    lengths = torch.tensor([6, 60, 45, 30])
    out = {}
    for cell in ("rnn", "lstm", "gru"):
        for bidirectional in (False, True):
            for pooling in ("last", "mean", "max"):
                options = MODELS.get(cell).Options(  # each family's own options
                    name=cell, hidden_size=128, embedding_dim=128, num_layers=2,
                    bidirectional=bidirectional, pooling=pooling)
                model = build_model(options, spec).eval()
                with torch.no_grad():
                    alone = model(short, torch.tensor([6]))[0].softmax(-1)[0]
                    batched = model(batch, lengths)[0].softmax(-1)[0]
                key = f"{cell}{'-bi' if bidirectional else ''}-{pooling}"
                out[key] = float((alone - batched).abs().max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "bilstm_reviews.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=None)
    args = parser.parse_args()
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="rnnlab-bench-sentiment-"))
    torch.set_num_threads(args.threads)
    rows = [train_seed(args.config, seed, args.threads, runs_dir) for seed in args.seeds]
    print("| seed | test acc | test macro F1 | val acc | best epoch / epochs | s/epoch | eval == summary |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['test_accuracy']:.2%} | {r['test_macro_f1']:.4f} "
              f"| {r['val_accuracy']:.2%} | {r['best_epoch']} / {r['epochs']} | {r['s_per_epoch']:.2f} "
              f"| {r['eval_reproduces']} |")
    accs = [r["test_accuracy"] for r in rows]
    print(f"mean test accuracy {statistics.mean(accs):.2%} over seeds {args.seeds}; "
          f"malformed lines skipped: {rows[0]['skipped_lines']}")
    print(f"padding invariance, trained run (seed {rows[0]['seed']}), every test sentence: "
          f"max |p alone - p batched| = {padding_gap_trained(rows[0]['run']):.2e}")
    gaps = padding_gap_families()
    worst = max(gaps, key=gaps.get)
    print(f"padding invariance, 18 fresh models (rnn/lstm/gru x uni/bi x last/mean/max): "
          f"max gap {gaps[worst]:.2e} ({worst})")
    print(f"runs in {runs_dir}")


if __name__ == "__main__":
    main()
