"""What ``rnnlab check`` sees of the ``charlm`` task (``contract``): a config per batching on the
built-in corpus; the text replaced by its own positions (character i is "i") while the check
reads, so the training batches and the evaluation streams show the positions they read; and a
perfect predictor that answers "x + 1", which must then score loss 0 on every split."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from rnnlab.tasks.contract import Layout, Oracle, Perfect, one_hot_logits


@contextlib.contextmanager
def positions_as_text(task: Any) -> Iterator[int]:
    """The text replaced by its positions while the block runs (yields its length)."""
    original = task.ids
    task._ids = torch.arange(len(original), device=original.device)
    try:
        yield len(original)
    finally:
        task._ids = original


def echo(n: int, seen: list[torch.Tensor]) -> Oracle:
    """Predicts the next position (x + 1) with certainty, keeping what it was asked in ``seen``."""
    def answer(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        seen.append(x.detach().cpu())
        return one_hot_logits((x + 1).clamp(max=n - 1), n)
    return Oracle(answer)


class CharLMChecks:
    bounds: dict[str, tuple[int, int]]

    @classmethod
    def check_configs(cls, folder: Path) -> list[dict[str, Any]]:
        task = {"bptt": 16, "eval_streams": 4, "eval_chunk": 64, "samples": 0}
        data = {"corpus": "python_docs", "max_chars": 6000}
        return [{"variant": f"batching: {b}", "task": {**task, "batching": b}, "data": data}
                for b in ("random", "sequential")]

    def split_layout(self) -> Layout:
        targets, inputs = {}, {}
        with positions_as_text(self) as n:
            xs, ys = [], []
            for batch in self.train_batches(8, torch.Generator().manual_seed(0)):  # type: ignore[attr-defined]
                xs.append(batch.x.reshape(-1).cpu())
                ys.append(batch.y.reshape(-1).cpu())
            inputs["train"], targets["train"] = torch.cat(xs)[:, None], torch.cat(ys)[:, None]
            for split in ("val", "test"):
                seen: list[torch.Tensor] = []
                self.evaluate(echo(n, seen), split, 32)  # type: ignore[attr-defined]
                read = torch.cat([s.reshape(-1) for s in seen])[:, None]
                inputs[split], targets[split] = read, read + 1  # the oracle check proves targets = x + 1
        same = self.bounds["test"] == self.bounds["val"]  # task.test_fraction 0: test is val
        return Layout("positions", {s: t for s, t in targets.items() if not (same and s == "test")},
                      inputs, dict(self.bounds), frozenset({"val", "test"}))

    def perfect_predictor(self) -> Perfect:
        n = len(self.ids)  # type: ignore[attr-defined]
        return Perfect(echo(n, []), {"loss": 0.0, "perplexity": 1.0}, ("val", "test"),
                       lambda: positions_as_text(self))
