"""bf16 autocast against fp32 for one training step of each recurrent kernel, on this CPU.

This is what ``precision: auto`` rests on (``rnnlab.training.precision.BF16_FASTER``): bf16 is picked only
for kernels measured faster in it on a CPU with native bfloat16. For each of nn.LSTM, nn.GRU,
rnnlab's ElmanRNN, a plain minGRU layer and two residual minGRU blocks (hidden 128/384, batch 64,
128 steps, plus a linear head) it times a forward and backward pass in fp32 and under CPU bf16
autocast, alternating the two ``--rounds`` times, and prints the best time of each and the ratio.
A kernel that cannot run in bf16 here says so.

    python benchmarks/precision.py [--threads 2] [--rounds 5] [--steps 784]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnlab.models.elman import ElmanRNN  # noqa: E402
from rnnlab.models.minrnn import MinStack  # noqa: E402
from rnnlab.training.precision import isa_summary, probe_bf16  # noqa: E402
from rnnlab.training.runtime import cpu_model  # noqa: E402


def step_seconds(rnn: nn.Module, head: nn.Module, x: torch.Tensor, bf16: bool, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out, _ = rnn(x)
            loss = head(out).float().square().mean()
        loss.backward()
        best = min(best, time.perf_counter() - t0)
    return best


def plain_mingru(inputs: int, hidden: int, batch_first: bool = True) -> nn.Module:
    """One plain minGRU layer (the fused CPU form), as ``model: {name: mingru}`` builds it."""
    return MinStack("mingru", inputs, hidden, 1, False, 0.0, "plain", True, 0, 0, "auto")


def residual_mingru(inputs: int, hidden: int, batch_first: bool = True) -> nn.Module:
    """Two residual minGRU blocks (norm, causal conv 4, minGRU, projection; feed-forward x2), the
    block the long-sequence and language-model recipes use (``block: residual``)."""
    return MinStack("mingru", inputs, hidden, 2, False, 0.0, "residual", True, 2, 4, "auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU {cpu_model()}; {isa_summary()}; {args.threads} threads; batch {args.batch}, "
          f"{args.steps} steps, input 64")
    for hidden in (128, 384):
        for name, cls in (("nn.LSTM", nn.LSTM), ("nn.GRU", nn.GRU), ("ElmanRNN", ElmanRNN),
                          ("minGRU", plain_mingru), ("minGRU-res", residual_mingru)):
            torch.manual_seed(0)
            rnn, head = cls(64, hidden, batch_first=True), nn.Linear(hidden, 65)
            x = torch.randn(args.batch, args.steps, 64)
            failure = probe_bf16(rnn)
            if failure:
                print(f"{name:9} hidden {hidden}: bf16 cannot run here ({failure[:80]})")
                continue
            step_seconds(rnn, head, x, False, 2), step_seconds(rnn, head, x, True, 2)  # warm-up
            fp32 = bf16 = float("inf")
            for _ in range(args.rounds):
                fp32 = min(fp32, step_seconds(rnn, head, x, False, 1))
                bf16 = min(bf16, step_seconds(rnn, head, x, True, 1))
            print(f"{name:9} hidden {hidden}: fp32 {fp32 * 1e3:7.1f} ms   bf16 {bf16 * 1e3:7.1f} ms   "
                  f"fp32/bf16 {fp32 / bf16:4.2f}x")


if __name__ == "__main__":
    main()
