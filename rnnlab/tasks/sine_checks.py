"""What ``rnnlab check`` sees of the ``sine`` task (``contract``): its configs (every mode whose
spec differs), the series positions each window reads and scores (its inputs located in the
generated series, whose values are all distinct) and a perfect predictor (a lookup of the targets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rnnlab.tasks.contract import SPLITS, Layout, Oracle, Perfect, locate, lookup, predicting


class SineChecks:
    options: Any
    windows: dict[str, dict[str, torch.Tensor]]
    series: torch.Tensor
    bounds: dict[str, tuple[int, int]]

    @classmethod
    def check_configs(cls, folder: Path) -> list[dict[str, Any]]:
        base = {"n_points": 200}
        return [
            {"variant": "mode: window", "task": {**base, "mode": "window", "window": 4}},
            {"variant": "mode: seq2seq", "task": {**base, "mode": "seq2seq", "seq_len": 20,
                                                        "stride": 5, "warmup": 2}},
            {"variant": "mode: rollout", "task": {**base, "mode": "rollout", "window": 4,
                                                        "horizon": 3}},
        ]

    def split_layout(self) -> Layout:
        targets, inputs, problems = {}, {}, []
        for split in SPLITS:
            w = self.windows[split]
            targets[split] = w["pos"].cpu()
            found = locate(w["x"][..., 0], self.series)
            if found is None:
                problems.append(f"the {split} inputs are not values of the series")
                found = torch.zeros(0, dtype=torch.int64)
            inputs[split] = found
        context = frozenset({"val", "test"}) if self.options.mode == "seq2seq" else frozenset()
        return Layout("positions", targets, inputs, dict(self.bounds), context, problems)

    def perfect_predictor(self) -> Perfect:
        table = lookup([(self.windows[s]["x"], self.windows[s]["y"]) for s in SPLITS])
        return Perfect(Oracle(lambda x, _: x), {"mse": 0.0}, context=lambda: predicting(self, table))
