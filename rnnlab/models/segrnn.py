"""SegRNN (Lin et al. 2023): the lookback of each channel cut into segments of ``segment`` steps,
each embedded (linear + ReLU); one GRU reads the segments; the horizon is decoded in parallel (PMF):
for every output segment the same GRU takes one step from the encoder's final state with a
position embedding beside a channel embedding as its input, and a linear layer maps that step's
output to the segment's values. Channels are independent (one GRU shared by all channels, run on
each separately); the last-value normalisation is the task's ``window_norm`` (``auto`` = ``last``).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from pydantic import Field
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.base import Model, ModelOptions, State, target_channels
from rnnlab.registry import MODELS
from rnnlab.tasks.base import TaskSpec


class SegRNNOptions(ModelOptions):
    hidden_size: int = Field(256, gt=0, description="segment embedding and GRU width (even)")
    segment: int = Field(24, gt=0, description="steps per segment (must divide the lookback)")
    dropout: float = Field(0.5, ge=0, lt=1, description="on the decoder's output before the projection")


@MODELS.register("segrnn", "SegRNN: segment-wise GRU, parallel multi-step decoding, channel independence")
class SegRNN(Model):
    Options = SegRNNOptions
    native_horizon = True
    fixed_window = True

    @classmethod
    def check_options(cls, options: Any, where: str) -> None:
        if options.hidden_size % 2:
            raise ConfigError(where, f"model.hidden_size: must be even (half position, half channel "
                              f"embedding), got {options.hidden_size}")

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if spec.output != "horizon" or spec.input_kind != "features" or spec.window is None:
            raise ConfigError(where, "model.name: 'segrnn' forecasts fixed lookback windows "
                              "(task series, mode: direct)")
        if spec.window % options.segment:
            raise ConfigError(where, f"model.segment: {options.segment} must divide the lookback "
                              f"({spec.window})")

    def __init__(self, options: SegRNNOptions, spec: TaskSpec) -> None:
        super().__init__(options, spec)
        d, w = options.hidden_size, options.segment
        assert spec.window is not None and spec.horizon is not None
        self.segments_out = math.ceil(spec.horizon / w)
        self.embed = nn.Sequential(nn.Linear(w, d), nn.ReLU())
        self.rnn = nn.GRU(d, d, batch_first=True)
        self.position = nn.Parameter(torch.randn(self.segments_out, d // 2))
        self.channel = nn.Parameter(torch.randn(spec.input_size, d // 2))
        self.project = nn.Sequential(nn.Dropout(options.dropout), nn.Linear(d, w))

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: State = None
                ) -> tuple[torch.Tensor, State]:
        b, lookback, c = x.shape
        w, m, d = self.options.segment, self.segments_out, self.options.hidden_size
        segs = x.permute(0, 2, 1).reshape(b * c, lookback // w, w)
        _, h = self.rnn(self.embed(segs))  # (1, B*C, d)
        queries = torch.cat([self.position.unsqueeze(0).expand(c, m, d // 2),
                             self.channel.unsqueeze(1).expand(c, m, d // 2)], dim=-1)  # (C, m, d)
        queries = queries.unsqueeze(0).expand(b, c, m, d).reshape(b * c * m, 1, d)
        _, out = self.rnn(queries, h.repeat_interleave(m, dim=1))  # every segment from the encoder state
        y = self.project(out[0]).view(b, c, m * w)[:, :, :self.spec.horizon].permute(0, 2, 1)
        return target_channels(y, self.spec), None
