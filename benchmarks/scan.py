"""Time one training step (forward + backward) of minGRU/minLSTM and S4D against nn.GRU/nn.LSTM.

Same hidden size, batch 64, input size 1 (as pixel MNIST), one layer, a loss on the final state
h_n (as a last-step classifier reads it); for S4D (one ``s4d`` block: input projection, the
diagonal SSM as an FFT convolution, GELU, GLU projection, residual, LayerNorm; ``--d-state``) a
loss on the mean of its outputs, as its mean-pooled classifier reads them.
For every sequence length it prints the median milliseconds per step of each model (and of each
minRNN form: fused, logspace, sequential) and the ratios nn.GRU / minGRU, nn.LSTM / minLSTM,
nn.GRU / s4d and nn.LSTM / s4d; ``auto`` is the form the models use on that device. On CPU it
runs with ``--threads`` threads (default 2); with CUDA available it also times the GPU.

    python benchmarks/scan.py                         # T = 28 128 784 4096, CPU (+ CUDA)
    python benchmarks/scan.py --lengths 784 --repeats 10 --forms fused
    python benchmarks/scan.py --lengths 784 4096 --forms fused   # the T of the S4D comparison
    python benchmarks/scan.py --json scan.json        # also write the table as JSON
    python benchmarks/scan.py --malloc system         # malloc's defaults (rnnlab train keeps freed memory)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import torch
from torch import nn

from rnnlab.common.allocator import keep_freed_memory
from rnnlab.models.minrnn import MinStack
from rnnlab.models.scan import resolve_form
from rnnlab.models.ssm import S4DStack


def time_step(step: Callable[[], None], repeats: int, device: torch.device) -> float:
    """Median ms of ``step`` over ``repeats`` runs after two warm-up runs."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def classic_step(cell: type[nn.RNNBase], x: torch.Tensor, hidden: int) -> Callable[[], None]:
    rnn = cell(x.shape[-1], hidden, batch_first=True).to(x.device)

    def step() -> None:
        rnn.zero_grad(set_to_none=True)
        _, state = rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n)
        h_n.square().mean().backward()

    return step


def min_step(family: str, form: str, x: torch.Tensor, hidden: int) -> Callable[[], None]:
    stack = MinStack(family, x.shape[-1], hidden, 1, False, 0.0, "plain", True, 0, 0, form).to(x.device)

    def step() -> None:
        stack.zero_grad(set_to_none=True)
        _, h_n = stack(x)
        h_n.square().mean().backward()

    return step


def s4d_step(x: torch.Tensor, hidden: int, d_state: int) -> Callable[[], None]:
    stack = S4DStack(x.shape[-1], hidden, 1, d_state, "lin", 0.0, "layer", False, "fft").to(x.device)
    stack.keep_state = False  # a last-step task: no final state is computed

    def step() -> None:
        stack.zero_grad(set_to_none=True)
        out, _ = stack(x)
        out.mean(1).square().mean().backward()

    return step


def bench(device: torch.device, lengths: list[int], batch: int, hidden: int, repeats: int,
          forms: list[str], max_sequential: int, d_state: int = 64) -> list[dict[str, object]]:
    rows = []
    auto = resolve_form("auto", device)
    for steps in lengths:
        x = torch.randn(batch, steps, 1, device=device)
        row: dict[str, object] = {"device": device.type, "T": steps}
        for name, cell in (("nn.GRU", nn.GRU), ("nn.LSTM", nn.LSTM)):
            row[name] = time_step(classic_step(cell, x, hidden), repeats, device)
        for family in ("mingru", "minlstm"):
            for form in forms:
                if form == "sequential" and steps > max_sequential:
                    continue
                row[f"{family} {form}"] = time_step(min_step(family, form, x, hidden), repeats, device)
            row[f"{family} auto"] = row.get(f"{family} {auto}") or time_step(
                min_step(family, auto, x, hidden), repeats, device)
        row["s4d fft"] = time_step(s4d_step(x, hidden, d_state), repeats, device)
        row["GRU/minGRU"] = float(row["nn.GRU"]) / float(row["mingru auto"])  # type: ignore[arg-type]
        row["LSTM/minLSTM"] = float(row["nn.LSTM"]) / float(row["minlstm auto"])  # type: ignore[arg-type]
        row["GRU/s4d"] = float(row["nn.GRU"]) / float(row["s4d fft"])  # type: ignore[arg-type]
        row["LSTM/s4d"] = float(row["nn.LSTM"]) / float(row["s4d fft"])  # type: ignore[arg-type]
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row: dict[str, object]) -> str:
    cells = [f"{row['device']:>4} T={row['T']:<5}"]
    for key, value in row.items():
        if key in ("device", "T"):
            continue
        cells.append(f"{key} {value:.2f}x" if "/" in key else f"{key} {value:.1f} ms")  # type: ignore[str-format]
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[28, 128, 784, 4096])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--forms", nargs="+", default=["fused", "logspace", "sequential"],
                        choices=["fused", "logspace", "sequential"])
    parser.add_argument("--max-sequential", type=int, default=784,
                        help="skip the (slow, reference) sequential form above this length")
    parser.add_argument("--d-state", type=int, default=64, help="s4d: state size (d_state/2 complex modes)")
    parser.add_argument("--no-cuda", action="store_true")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--malloc", choices=["rnnlab", "system"], default="rnnlab",
                        help="rnnlab: glibc keeps freed memory, as `rnnlab train` sets it "
                        "(rnnlab.common.allocator); system: malloc's defaults")
    args = parser.parse_args()
    kept = keep_freed_memory() if args.malloc == "rnnlab" else False
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"malloc: {'freed memory kept (rnnlab.common.allocator)' if kept else 'system defaults'}")
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), batch {args.batch}, hidden "
          f"{args.hidden}, input 1, one layer; median ms per training step (forward + backward) "
          f"of {args.repeats}")
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda"))
    rows = []
    for device in devices:
        rows += bench(device, args.lengths, args.batch, args.hidden, args.repeats, args.forms,
                      args.max_sequential, args.d_state)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
