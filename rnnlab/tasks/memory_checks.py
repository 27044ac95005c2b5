"""What ``rnnlab check`` sees of the generated memory tasks (``adding``, ``copy``,
``selective_copy``; ``contract``): a small config each, every sequence's id is its content (so a
sequence drawn into two splits shows), and a perfect predictor computing the answer from the
inputs (``task.answer``), not from a lookup."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from rnnlab.tasks.contract import SPLITS, Layout, Oracle, Perfect, one_hot_logits


class MemoryChecks:
    check_options: dict[str, Any] = {}  # each task's small config for the check
    x: dict[str, torch.Tensor]
    options: Any
    spec: Any

    @classmethod
    def check_configs(cls, folder: Path) -> list[dict[str, Any]]:
        task = {"n_train": 64, "n_val": 40, "n_test": 40, **cls.check_options}
        return [{"variant": f"length: {task['length']}, generated", "task": task}]

    def split_layout(self) -> Layout:
        flat = [self.x[s].reshape(len(self.x[s]), -1).cpu() for s in SPLITS]
        _, ids = torch.unique(torch.cat(flat), dim=0, return_inverse=True)
        return Layout("examples", dict(zip(SPLITS, ids.split([len(f) for f in flat]))))

    def perfect_predictor(self) -> Perfect:
        answer_of = self.answer  # type: ignore[attr-defined]
        if self.spec.output == "last":  # adding
            want = {"loss": 0.0, "mse": 0.0, "mse_over_baseline": 0.0}
            return Perfect(Oracle(lambda x, _: answer_of(x)), want)
        k, classes = self.options.n_tokens, self.spec.output_size

        def answer(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
            out = torch.zeros(len(x), x.shape[1], classes, device=x.device)
            out[:, -k:] = one_hot_logits(answer_of(x), classes)
            return out
        return Perfect(Oracle(answer), {"loss": 0.0, "accuracy": 1.0, "sequence_accuracy": 1.0})
