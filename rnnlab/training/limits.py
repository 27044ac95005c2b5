"""Resource limits checked before anything is allocated or written.

- ``check_memory``: the model is built on PyTorch's ``meta`` device (shapes only, no storage) to
  count its parameters; training needs them four times over (weights, gradients and Adam's two
  moments; three with SGD), plus the activations kept for backpropagation, estimated from the
  batch (``train.batch_size`` x the task's tokens per example) and the model's widths. A config
  whose estimate exceeds the memory available (``MemAvailable`` on CPU, free device memory on
  CUDA) is refused with one line naming the field, the estimate and what is available.
- ``allocation_guard``: the safety net for what the estimate does not cover (e.g. a generated
  data set far too large): an allocation failure while building becomes one line.
- ``check_threads``: ``train.threads`` above the cores this process may use is capped to them,
  with a warning (oversubscribed threads spin on each other: a 3-step epoch took 78 s with 1000
  threads on 2 cores).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Iterator, Optional

import torch

from rnnlab.errors import ConfigError

if TYPE_CHECKING:
    from rnnlab.config.loading import Experiment
    from rnnlab.tasks.base import Task

SIZE_FIELDS = ("hidden_size", "hidden_sizes", "embedding_dim", "embedding_size", "num_layers")


def human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.3g} ZiB"  # pragma: no cover


def available_memory(device: torch.device) -> Optional[int]:
    """Bytes that can still be allocated on ``device`` (None: unknown)."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _widths(options: Any) -> tuple[int, int]:
    """(the widest layer, the number of layers) from a model's options, whatever its family."""
    widths: list[int] = []
    for key in ("hidden_size", "embedding_dim", "embedding_size", "embed_size"):
        value = getattr(options, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            widths.append(value)
    sizes = getattr(options, "hidden_sizes", None)
    if isinstance(sizes, list):
        widths += [w for w in sizes if isinstance(w, int)]
    layers = getattr(options, "num_layers", None)
    layers = layers if isinstance(layers, int) else max(1, len(sizes) if isinstance(sizes, list) else 1)
    if getattr(options, "bidirectional", False):
        layers *= 2
    return max(widths, default=1), max(layers, 1)


def count_parameters(exp: "Experiment", task: "Task") -> int:
    """Parameters of the configured model, counted without allocating its storage."""
    from rnnlab.models.base import build_model

    width, layers = _widths(exp.model)
    rough = 4 * width * (width + task.spec.input_size + task.spec.output_size + 1) * layers
    if rough > 2**40:  # far beyond any memory: the shapes alone would overflow the meta tensors
        return rough
    try:
        with torch.device("meta"):
            model = build_model(exp.model, task.spec, where="config")
        return sum(p.numel() for p in model.parameters())
    except (RuntimeError, ValueError, OverflowError, NotImplementedError):
        return rough


def _batch_tokens(task: "Task", batch_size: int, draw: bool = True) -> int:
    """Tokens (time steps x examples) in one real batch: a batch size above the data set's size
    gives the whole data set, so this is what a step holds, not ``batch_size`` x length. Without
    ``draw`` (a finished run's task, whose data is read only if needed): ``batch_size`` x window."""
    if not draw:
        return batch_size * max(1, task.spec.window or 1)
    try:
        return max(1, task.tokens_per_step(batch_size))
    except (StopIteration, RuntimeError, ValueError, TypeError, IndexError, MemoryError):
        return batch_size * max(1, task.spec.window or 1)


def estimate(exp: "Experiment", task: "Task", draw: bool = True) -> dict[str, Any]:
    """Training memory in bytes: parameters with their state, and activations of one batch
    (drawn from the task's data when ``draw``)."""
    params = count_parameters(exp, task)
    copies = 3 if exp.train.optimizer == "sgd" else 4  # weights, grads (+ momentum | 2 moments)
    bytes_per = 4
    width, layers = _widths(exp.model)
    out = task.spec.output_size
    with allocation_guard("one training batch", "train.batch_size"):
        train_tokens = _batch_tokens(task, exp.train.batch_size, draw)
        eval_tokens = _batch_tokens(task, exp.train.eval_batch, draw)
    # per step and layer: the gates (4 x width for an LSTM), states and outputs, kept for backward
    activations = train_tokens * (6 * width * layers + out) * bytes_per
    outputs = eval_tokens * (2 * width + out) * bytes_per  # eval: no graph, one layer at a time
    state = params * copies * bytes_per
    return {"parameters": params, "state": state, "activations": activations + outputs,
            "total": state + activations + outputs}


def check_memory(exp: "Experiment", task: "Task", device: torch.device,
                 where: str = "config", draw: bool = True) -> None:
    """Refuse a model or batch that cannot fit in the memory available, before allocating it.
    ``draw``: measure a real batch (a new run); a finished run's data is not read for this."""
    available = available_memory(device)
    if available is None:
        return
    est = estimate(exp, task, draw)
    if not draw:  # a finished run: only its parameters (eval batches are not known exactly)
        est = {**est, "activations": 0, "total": est["state"]}
    if est["total"] <= available:
        return
    if est["state"] >= est["activations"]:
        field = next((f"model.{k}" for k in SIZE_FIELDS if getattr(exp.model, k, None) is not None),
                     "model")
        cause = f"{est['parameters']:.3g} parameters with their gradients and optimizer state"
    else:
        field = "train.batch_size"
        cause = (f"activations of a batch of {exp.train.batch_size} "
                 f"(and eval batches of {exp.train.eval_batch})")
    raise ConfigError(where, f"{field}: training would need about {human(est['total'])} "
                      f"({cause}); {human(available)} of {device.type} memory is available")


def is_allocation_failure(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text.lower()
                                              or "Overflow when unpacking" in text)


@contextlib.contextmanager
def allocation_guard(what: str, where: str = "config") -> Iterator[None]:
    """An allocation that fails while ``what`` is built becomes one ConfigError line."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_allocation_failure(exc):
            raise
        asked = re.search(r"allocate (\d+) bytes", str(exc))
        if asked:
            free = available_memory(torch.device("cpu"))
            detail = f"it asked for {human(int(asked.group(1)))}" + (
                f"; {human(free)} of memory is available" if free is not None else "")
        else:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ConfigError(where, f"not enough memory to build {what} ({detail}); make the data or "
                          "model smaller") from None


def check_threads(threads: Optional[int], cores: int, warn: bool = True) -> int:
    """The thread count to use: ``threads`` (default: every core), capped to ``cores``."""
    if threads is None:
        return cores
    if threads > cores:
        if warn:
            print(f"warning: train.threads: {threads} is more than the {cores} core(s) available; "
                  f"using {cores} (more threads than cores only slows training down)",
                  file=sys.stderr, flush=True)
        return cores
    return threads
