"""What ``rnnlab check`` sees of the ``sentiment`` task (``contract``): a config on the built-in
tiny set, each example matched to the source row it came from (text and label, so a row used
twice or in two splits shows), and a perfect predictor (a lookup of each sentence's label)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import torch

from rnnlab.tasks.contract import SPLITS, Layout, Oracle, Perfect, key, one_hot_logits


class SentimentChecks:
    sources: dict[str, Any]
    examples: dict[str, Any]
    splits: dict[str, Any]
    classes: list[str]
    class_ids: dict[str, int]

    @classmethod
    def check_configs(cls, folder: Path) -> list[dict[str, Any]]:
        return [{"variant": "built-in tiny set", "task": {}}]

    def split_layout(self) -> Layout:
        tokenize = self.tokenize  # type: ignore[attr-defined]
        pool: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        row_id = 0
        for rows in self.sources.values():
            for row in rows:
                tokens = tokenize(row.text)
                if tokens and row.label in self.class_ids:
                    pool[(tuple(tokens), self.class_ids[row.label])].append(row_id)
                row_id += 1
        out, problems = {}, []
        for split in SPLITS:
            ids = []
            for ex in self.examples[split]:
                left = pool.get((tuple(ex.tokens), ex.label))
                if not left:
                    problems.append(f"a {split} example ({' '.join(ex.tokens)[:40]!r}) is used more often "
                                    "than the data holds it, or is not in the data")
                    continue
                ids.append(left.pop(0))
            out[split] = torch.tensor(ids, dtype=torch.int64)
        return Layout("examples", out, problems=problems[:1])

    def perfect_predictor(self) -> Perfect:
        classes = len(self.classes)
        table = {}
        for s in SPLITS:
            split = self.splits[s]
            for i in range(len(split.lengths)):
                table[key(split.ids[i, :int(split.lengths[i])])] = split.labels[i]

        def answer(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
            assert lengths is not None, "sentiment batches carry lengths"
            rows = [x[i, :int(lengths[i])] for i in range(len(x))]
            return one_hot_logits(torch.stack([table[key(r)] for r in rows]), classes).to(x.device)
        return Perfect(Oracle(answer), {"loss": 0.0, "accuracy": 1.0})
