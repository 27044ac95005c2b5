"""What ``rnnlab check`` sees of the ``series`` task (``contract``): its configs (one per mode, on
the built-in CO2 record), the series positions each window reads and scores, and a perfect
predictor (a lookup of every window's targets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rnnlab.tasks.contract import SPLITS, Layout, Oracle, Perfect, lookup, predicting


class SeriesChecks:
    options: Any
    index: dict[str, tuple[torch.Tensor, torch.Tensor]]
    bounds: dict[str, tuple[int, int]]

    @classmethod
    def check_configs(cls, folder: Path) -> list[dict[str, Any]]:
        base = {"lookback": 24, "horizon": 6, "period": 12}
        data = {"fill": "interpolate"}  # the built-in CO2 record has five empty months
        return [{"variant": f"mode: {mode}", "task": {**base, "mode": mode}, "data": data,
                 "model": model}
                for mode, model in (("direct", "linear"), ("rollout", "lstm"),
                                    ("encoder_decoder", "seq2seq"))]

    def split_layout(self) -> Layout:
        targets = {s: self.index[s][1].cpu() for s in SPLITS}
        inputs = {s: self.index[s][0].cpu() for s in SPLITS}
        context = frozenset({"val", "test"}) if self.options.context == "previous" else frozenset()
        return Layout("positions", targets, inputs, dict(self.bounds), context)

    def perfect_predictor(self) -> Perfect:
        table = lookup([self.gather(s, slice(None)) for s in SPLITS])  # type: ignore[attr-defined]
        return Perfect(Oracle(lambda x, _: x), {"mse": 0.0, "mae": 0.0, "mae_data": 0.0},
                       context=lambda: predicting(self, table))
