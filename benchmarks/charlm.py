"""Training throughput of a char-level LSTM: a plain PyTorch loop vs ``rnnlab train``.

The same model (embedding 64, 2-layer LSTM 256, linear head), the same data (Tiny Shakespeare from
$RNNLAB_DATA, else the built-in corpus), windows of 128 characters, batch 64, Adam, gradient clipping
at 1.0. The plain loop is what a tutorial writes (nanoGPT-style random windows); rnnlab runs the
training loop (``Trainer.train_epoch``: batches from the task, clipping with the norm recorded,
finiteness checks, metrics) and reports the tokens/s it records in metrics.jsonl. Each side does
``--warmup`` steps first (not timed), then ``--steps`` timed steps; the two sides alternate
``--rounds`` times and the best round of each is compared.

    RNNLAB_DATA=../shared/data python benchmarks/charlm.py [--steps 60] [--warmup 10] [--threads 2]

With ``--budget SECONDS`` it instead trains, one after the other in this process and at the same
training-time budget, the plain reference recipe of ../shared/data/README.md (2-layer LSTM 384,
embedding 64, dropout 0.25, random windows of 128, batch 64, Adam 3e-3 with cosine decay to 10 %
over the budget, clip 1.0) and ``rnnlab train CONFIG`` (default configs/lstm_shakespeare.yaml) with
``train.max_time`` set to the budget, and prints both validation losses (the last 10 %, 16 streams
with state carried across 512-character chunks, the same evaluation on both sides) and tokens/s:

    RNNLAB_DATA=../shared/data python benchmarks/charlm.py --budget 600 [--plain-precision auto]

``--plain-precision auto`` (the default) gives the plain recipe bf16 autocast where rnnlab's
``auto`` would pick it (native bfloat16), so both sides use the CPU as well as they can.
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

from rnnlab.common.console import Reporter  # noqa: E402
from rnnlab.config.loading import Experiment, build_experiment  # noqa: E402
from rnnlab.models import build_model  # noqa: E402
from rnnlab.tasks import Task  # noqa: E402
from rnnlab.training.build import build_task  # noqa: E402
from rnnlab.training.runtime import seed_everything
from rnnlab.training.trainer import Trainer

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


def stream_loss(model: nn.Module, ids: torch.Tensor, start: int, stop: int, streams: int = 16,
                chunk: int = 512) -> float:
    """Mean cross-entropy (nats/char) over targets start..stop-1, read as ``streams`` contiguous
    streams in ``chunk``-character pieces with the LSTM state carried (the recipe's evaluation)."""
    count = stop - start
    lengths = torch.full((streams,), count // streams)
    lengths[: count % streams] += 1
    first = start + torch.cumsum(lengths, 0) - lengths
    steps = torch.arange(int(lengths.max()))
    positions = (first[:, None] + steps).clamp(max=stop - 1)
    mask = steps[None, :] < lengths[:, None]
    x, y = ids[positions - 1], ids[positions].masked_fill(~mask, -100)
    model.eval()
    total, state = 0.0, None
    with torch.no_grad():
        for c in range(0, x.shape[1], chunk):
            out, state = model.lstm(model.embed(x[:, c:c + chunk]), state)
            logits = model.head(model.drop(out))
            total += nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 y[:, c:c + chunk].reshape(-1), ignore_index=-100,
                                                 reduction="sum").item()
    model.train()
    return total / int(mask.sum())


class RecipeLM(nn.Module):
    """The reference recipe's model: embedding 64, 2-layer LSTM 384 with dropout 0.25 between the
    layers and before the head."""

    def __init__(self, vocab: int, hidden: int = 384, dropout: float = 0.25) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        self.lstm = nn.LSTM(EMBED, hidden, 2, batch_first=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(x))
        return self.head(self.drop(out))


def plain_recipe(ids: torch.Tensor, train_stop: int, vocab: int, budget: float, bf16: bool) -> dict:
    """The plain reference recipe trained for ``budget`` seconds of training steps."""
    import math

    torch.manual_seed(0)
    model = RecipeLM(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    offsets = torch.arange(BPTT + 1)
    data = ids[:train_stop]
    steps, elapsed = 0, 0.0
    while elapsed < budget:
        t0 = time.perf_counter()
        frac = min(1.0, elapsed / budget)
        for group in opt.param_groups:  # cosine decay to 10 % over the budget
            group["lr"] = LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        chunk = data[torch.randint(len(data) - BPTT - 1, (BATCH, 1)) + offsets]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(chunk[:, :-1])
        loss = nn.functional.cross_entropy(logits.float().reshape(-1, vocab), chunk[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        elapsed += time.perf_counter() - t0
    return {"val_loss": stream_loss(model, ids, train_stop, len(ids)), "steps": steps,
            "train_seconds": elapsed, "tokens_per_s": steps * BATCH * BPTT / elapsed}


def rnnlab_budget(config: str, budget: float, threads: int, runs_dir: Path) -> dict:
    """``rnnlab train CONFIG --set train.max_time=BUDGET``; its summary's figures."""
    import json

    from rnnlab.config.loading import load_experiment
    from rnnlab.execution.lifecycle import train_run

    exp = load_experiment(config, [f"train.max_time={budget}", f"train.threads={threads}",
                                   "logging.plots=false"])
    run = train_run(exp, runs_dir, Reporter(quiet=True))
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    tokens = sum(r["tokens_per_s"] * r["train_seconds"] for r in rows)
    return {"val_loss": summary["best_val"]["loss"], "steps": summary["steps"],
            "train_seconds": summary["train_seconds"], "tokens_per_s": tokens / summary["train_seconds"],
            "precision": summary["precision"], "run": str(run),
            "curve": [(round(sum(x["train_seconds"] for x in rows[: i + 1])), round(r["val_loss"], 4))
                      for i, r in enumerate(rows)]}


def budget_main(args: argparse.Namespace) -> None:
    from rnnlab.training.precision import isa_summary, resolve_precision
    from rnnlab.training.runtime import cpu_model

    exp = build_experiment({**experiment(args.threads, "tinyshakespeare").to_dict(),
                            "task": {"name": "charlm", "bptt": BPTT, "val_fraction": 0.1,
                                     "test_fraction": 0}}, "benchmark")
    task = build_task(exp, torch.device("cpu"))
    if task.corpus_info.get("chars") != 1_115_394:
        sys.exit("error: --budget needs Tiny Shakespeare: set RNNLAB_DATA=../shared/data")
    start, stop = task.bounds["val"]
    wanted = args.plain_precision
    bf16 = (resolve_precision("auto", torch.device("cpu"), nn.LSTM(4, 4)) == "bf16" if wanted == "auto"
            else wanted == "bf16")
    print(f"CPU {cpu_model()}; ISA {isa_summary()}; {args.threads} threads; budget {args.budget:g} s")
    plain = plain_recipe(task.ids, start, len(task.vocab), args.budget, bf16)
    print(f"plain recipe ({'bf16' if bf16 else 'fp32'}): val loss {plain['val_loss']:.4f} after "
          f"{plain['train_seconds']:.1f} s, {plain['steps']} steps, {plain['tokens_per_s']:,.0f} tokens/s",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ours = rnnlab_budget(args.config, args.budget, args.threads, Path(args.runs_dir or tmp))
    print(f"rnnlab {args.config} ({ours['precision']}): val loss {ours['val_loss']:.4f} after "
          f"{ours['train_seconds']:.1f} s, {ours['steps']} steps, {ours['tokens_per_s']:,.0f} tokens/s")
    print(f"  validation curve (training seconds, val loss): {ours['curve']}")
    print(f"rnnlab - plain: {ours['val_loss'] - plain['val_loss']:+.4f} nats/char "
          f"(target: <= +0.01); tokens/s ratio {ours['tokens_per_s'] / plain['tokens_per_s']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, help="seconds: the budget comparison (see above)")
    parser.add_argument("--config", default="configs/lstm_shakespeare.yaml", help="with --budget")
    parser.add_argument("--plain-precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--runs-dir", help="with --budget: keep rnnlab's run here (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=2, help="plain/rnnlab measurements, alternated")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.budget:
        return budget_main(args)
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
