"""Training throughput of a char-level LSTM: a plain PyTorch loop vs ``rnnlab train``.

The same model (embedding 64, 2-layer LSTM 256, linear head), the same data (Tiny Shakespeare from
$RNNLAB_DATA, else the built-in corpus), windows of 128 characters, batch 64, Adam, gradient clipping
at 1.0. The plain loop is what a tutorial writes (nanoGPT-style random windows); rnnlab runs the
training loop (``Trainer.train_epoch``: batches from the task, clipping with the norm recorded,
finiteness checks, metrics) and reports the tokens/s it records in metrics.jsonl. Each side does
``--warmup`` steps first (not timed), then ``--steps`` timed steps; the two sides alternate
``--rounds`` times and the best round of each is compared.

    RNNLAB_DATA=../shared/data python benchmarks/charlm.py [--steps 60] [--warmup 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnlab.config import Experiment, build_experiment  # noqa: E402
from rnnlab.models import build_model  # noqa: E402
from rnnlab.progress import Reporter  # noqa: E402
from rnnlab.tasks import Task  # noqa: E402
from rnnlab.train import Trainer, build_task, seed_everything  # noqa: E402

BPTT, BATCH, HIDDEN, LAYERS, EMBED, LR = 128, 64, 256, 2, 64, 3e-3


def experiment(threads: int, corpus: str) -> Experiment:
    return build_experiment({
        "name": "bench_charlm",
        "task": {"name": "charlm", "bptt": BPTT, "batching": "random", "samples": 0},
        "model": {"name": "lstm", "hidden_size": HIDDEN, "num_layers": LAYERS, "embedding_dim": EMBED},
        "train": {"batch_size": BATCH, "lr": LR, "clip_grad_norm": 1.0, "threads": threads,
                  "device": "cpu", "seed": 0, "steps_per_epoch": 1},
        "data": {"corpus": corpus},
    }, "benchmark")


class PlainLM(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, LAYERS, batch_first=True)
        self.head = nn.Linear(HIDDEN, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(x))
        return self.head(out)


def plain_loop(data: torch.Tensor, vocab: int, steps: int, warmup: int) -> float:
    """Tokens/s of the timed steps of a plain training loop."""
    torch.manual_seed(0)
    model = PlainLM(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    offsets = torch.arange(BPTT + 1)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        ix = torch.randint(len(data) - BPTT - 1, (BATCH, 1))
        chunk = data[ix + offsets]
        logits = model(chunk[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), chunk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    loss.item()
    return steps * BATCH * BPTT / (time.perf_counter() - start)


def rnnlab_loop(exp: Experiment, task: Task, steps: int, warmup: int, run_dir: Path) -> float:
    """Tokens/s of rnnlab's training loop (``Trainer.train_epoch``, what ``rnnlab train`` runs and
    records in metrics.jsonl) over an epoch of ``steps`` steps after a warm-up epoch."""
    seed_everything(0)
    model = build_model(exp.model, task.spec)
    trainer = Trainer(exp, task, model, run_dir, Reporter(quiet=True), torch.device("cpu"),
                      exp.train.threads or 1)
    trainer.steps_per_epoch = warmup
    trainer.train_epoch()
    trainer.steps_per_epoch = steps
    return trainer.train_epoch()["tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=2, help="plain/rnnlab measurements, alternated")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = os.environ.get("RNNLAB_DATA")
    corpus = ("tinyshakespeare" if root and (Path(root) / "tinyshakespeare" / "input.txt").is_file()
              else "python_docs")
    exp = experiment(args.threads, corpus)
    task = build_task(exp, torch.device("cpu"))
    data = task.ids[: task.bounds["train"][1]]
    plain, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):  # alternate, so a noisy neighbour hurts both sides alike
            plain.append(plain_loop(data, len(task.vocab), args.steps, args.warmup))
            ours.append(rnnlab_loop(exp, task, args.steps, args.warmup, Path(tmp)))
    print(f"corpus {corpus}, LSTM {LAYERS}x{HIDDEN}, windows {BPTT}, batch {BATCH}, "
          f"{args.threads} thread(s), {args.steps} timed steps after {args.warmup} warm-up")
    for label, rates in (("plain PyTorch loop", plain), ("rnnlab Trainer", ours)):
        each = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"{label:<20} best {max(rates):9,.0f} tokens/s   (rounds: {each})")
    print(f"rnnlab / plain       {max(ours) / max(plain):.2f}x (best of each)")


if __name__ == "__main__":
    main()
