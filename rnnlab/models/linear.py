"""The linear forecasting baseline as a model (NLinear / DLinear, Zeng et al. 2023): one linear
map from the L lookback values to the H future values, shared by the channels (or one per channel
with ``individual``); with ``decomposition`` (DLinear) a moving average splits each window into a
trend and a remainder, each with its own map. The last-value normalisation of NLinear is the
task's ``window_norm`` (``auto`` = ``last``)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from pydantic import Field
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.base import Model, ModelOptions, State, target_channels
from rnnlab.registry import MODELS
from rnnlab.tasks.base import TaskSpec


class LinearOptions(ModelOptions):
    decomposition: bool = Field(False, description="DLinear: separate maps for trend and remainder")
    kernel: int = Field(25, gt=0, description="decomposition: moving-average length (odd)")
    individual: bool = Field(False, description="one map per channel instead of a shared one")


@MODELS.register("linear", "NLinear/DLinear: a linear map from the lookback to the horizon, per channel")
class Linear(Model):
    Options = LinearOptions
    native_horizon = True
    fixed_window = True

    @classmethod
    def check_options(cls, options: Any, where: str) -> None:
        if options.decomposition and options.kernel % 2 == 0:
            raise ConfigError(where, f"model.kernel: must be odd, got {options.kernel}")

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if spec.output != "horizon" or spec.input_kind != "features" or spec.window is None:
            raise ConfigError(where, "model.name: 'linear' forecasts fixed lookback windows "
                              "(task series, mode: direct)")

    def __init__(self, options: LinearOptions, spec: TaskSpec) -> None:
        super().__init__(options, spec)
        assert spec.window is not None and spec.horizon is not None
        copies = spec.input_size if options.individual else 1
        parts = 2 if options.decomposition else 1
        self.maps = nn.ModuleList(nn.ModuleList(nn.Linear(spec.window, spec.horizon) for _ in range(copies))
                                  for _ in range(parts))

    def _map(self, maps: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, H)"""
        if len(maps) == 1:
            return maps[0](x)
        return torch.stack([m(x[:, i]) for i, m in enumerate(maps)], dim=1)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: State = None
                ) -> tuple[torch.Tensor, State]:
        z = x.permute(0, 2, 1)  # (B, C, L)
        if self.options.decomposition:
            k = self.options.kernel
            edge = k // 2  # the ends repeated, as DLinear does
            padded = torch.cat([z[:, :, :1].expand(-1, -1, edge), z, z[:, :, -1:].expand(-1, -1, edge)], -1)
            trend = padded.unfold(-1, k, 1).mean(-1)
            y = self._map(self.maps[0], trend) + self._map(self.maps[1], z - trend)
        else:
            y = self._map(self.maps[0], z)
        y = y.permute(0, 2, 1)
        return target_channels(y, self.spec), None
