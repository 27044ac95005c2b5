"""Sampling text from a trained character-level language model (``rnnlab generate``).

The prefix is read in one forward call; then each new character is drawn from the model's
distribution over the next one and fed back, carrying the recurrent state. ``<unk>`` is never
drawn. Temperature 0 is greedy (argmax); ``top_k`` keeps the k most likely characters. Draws come
from a CPU generator seeded with ``seed``, so the same run, prefix and seed give the same text on
the same machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch

from rnnlab.common.numbers import (
    INT64_MAX,
    INT64_MIN,
    MAX_GENERATE,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    check_number,
)
from rnnlab.errors import ConfigError, RunDirError

if TYPE_CHECKING:
    from rnnlab.models.base import Model
    from rnnlab.tasks.charlm import Vocab


def check_settings(length: int, temperature: float, top_k: Optional[int],
                   seed: Optional[int] = None) -> None:
    """The sampling options, checked before the run is loaded (the same for the CLI and the API)."""
    check_number(length, "--length", integer=True, low=0, high=MAX_GENERATE,
                 why="new characters, each one step of the model")
    check_number(temperature, "--temperature", low=0, high=MAX_TEMPERATURE,
                 why="0 is greedy; above it every character is about equally likely")
    if 0 < temperature < MIN_TEMPERATURE:
        raise ConfigError("--temperature", f"must be 0 (greedy) or at least {MIN_TEMPERATURE:g} "
                          f"(smaller ones overflow the scaled logits), got {temperature:g}")
    if top_k is not None:
        check_number(top_k, "--top-k", integer=True, low=1)
    if seed is not None:
        check_number(seed, "--seed", integer=True, low=INT64_MIN, high=INT64_MAX,
                     why="a 64-bit generator seed")


def next_id(logits: torch.Tensor, temperature: float, top_k: Optional[int],
            generator: torch.Generator) -> int:
    """One draw from (B=1) next-character logits; id 0 (``<unk>``) is excluded."""
    logits = logits.detach().double().cpu().clone()
    logits[0] = float("-inf")
    if temperature == 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None and top_k < len(logits) - 1:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=0)
    return int(torch.multinomial(probs, 1, generator=generator))


def describe_char(c: str) -> str:
    return f"{c!r} (U+{ord(c):04X})"


def sample(model: "Model", vocab: "Vocab", prefix: str, length: int, temperature: float,
           top_k: Optional[int] = None, seed: Optional[int] = None) -> str:
    """``prefix`` followed by exactly ``length`` generated characters. Call in eval mode under
    no_grad (``generate_text`` does)."""
    check_settings(length, temperature, top_k, seed)
    if not prefix:
        raise ConfigError("--prefix", "must not be empty (the model needs a character to start from)")
    unknown = vocab.unknown(prefix)
    if unknown:
        shown = ", ".join(describe_char(c) for c in unknown[:5])
        raise ConfigError("--prefix", f"character(s) not in the run's vocabulary: {shown} "
                          f"(the model knows {len(vocab) - 1} characters)")
    generator = torch.Generator().manual_seed(seed if seed is not None else
                                              int.from_bytes(os.urandom(8), "little") >> 1)
    device = next(model.parameters()).device
    out, state = model(vocab.encode(prefix).to(device)[None])
    new: list[int] = []
    for _ in range(length):
        new.append(next_id(out[0, -1], temperature, top_k, generator))
        out, state = model(torch.tensor([[new[-1]]], device=device), None, state)
    return prefix + vocab.decode(new)


def generate_text(run_dir: Path, task_name: str, task: Any, model: "Model", prefix: str, length: int,
                  temperature: float, top_k: Optional[int] = None, seed: Optional[int] = None) -> str:
    """``rnnlab generate`` on a loaded run (its vocabulary and weights; the corpus is not read):
    ``prefix`` and ``length`` sampled characters (settings checked by ``check_settings``)."""
    if getattr(task.spec, "input_kind", None) != "tokens" or not hasattr(task, "vocab") \
            or task.spec.output != "sequence":  # a next-token model with a character vocabulary
        raise RunDirError(run_dir, f"task '{task_name}' does not generate text (only charlm runs do)")
    model.eval()
    with torch.no_grad():
        return sample(model, task.vocab, prefix, length, temperature, top_k, seed)
