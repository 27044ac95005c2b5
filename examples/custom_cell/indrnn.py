"""IndRNN (Li et al. 2018, "Independently Recurrent Neural Network"), an rnnlab plugin.

Each hidden unit has one recurrent weight of its own instead of a full hidden-to-hidden matrix:
``h_t = relu(W x_t + b + u * h_{t-1})``. Only the core is written here; ``Recurrent`` supplies
embeddings, one-hot inputs, pooling, heads, forecasting, ``init`` and everything rnnlab does with
a model. Load it with ``plugins: [indrnn.py]`` in a config (a path relative to the config), or
install this folder (``pip install examples/custom_cell``) for the ``rnnlab.plugins`` entry point.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from pydantic import Field
from torch import nn

import rnnlab
from rnnlab.errors import ConfigError
from rnnlab.models.recurrent import RecurrentOptions, Recurrent


class IndRNNOptions(RecurrentOptions):
    recurrent_max: float = Field(1.0, gt=0, description="|u| is clipped to this after each step "
                                 "(1.0 keeps every unit from exploding)")


class IndRNNCore(nn.Module):
    """Stacked IndRNN layers: ``forward(x, lengths, state) -> (out, h_n)`` (rnnlab's core contract)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float,
                 recurrent_max: float) -> None:
        super().__init__()
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.inputs = nn.ModuleList(nn.Linear(size, hidden_size) for size in sizes)
        self.u = nn.ParameterList(nn.Parameter(torch.rand(hidden_size) * recurrent_max) for _ in sizes)
        self.drop = nn.Dropout(dropout)
        self.hidden_size, self.num_layers, self.recurrent_max = hidden_size, num_layers, recurrent_max
        self.recorder: Any = None  # set by `rnnlab gradflow`: hand every h_t over

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor], state: Any
                ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps = x.shape[:2]
        real = None if lengths is None else (
            torch.arange(steps, device=x.device)[None, :] < lengths.to(x.device)[:, None])  # (B, T)
        h0 = x.new_zeros(self.num_layers, batch, self.hidden_size) if state is None else state
        finals, out = [], x
        for layer, (linear, u) in enumerate(zip(self.inputs, self.u)):
            u = u.clamp(-self.recurrent_max, self.recurrent_max)
            pre, h, hs = linear(out if layer == 0 else self.drop(out)), h0[layer], []
            for t in range(steps):
                new = torch.relu(pre[:, t] + u * h)
                h = new if real is None else torch.where(real[:, t, None], new, h)  # padding: keep h
                hs.append(h)
            if self.recorder is not None:
                self.recorder.keep_states(f"layer {layer}", hs, real, None)
            out = torch.stack(hs, dim=1)
            if real is not None:
                out = out * real[..., None]
            finals.append(h)
        return out, torch.stack(finals)


@rnnlab.register_model("indrnn", "IndRNN (Li et al. 2018): one recurrent weight per unit, ReLU")
class IndRNN(Recurrent):
    Options = IndRNNOptions

    @classmethod
    def check_spec(cls, options: Any, spec: Any, where: str) -> None:
        if options.bidirectional:
            raise ConfigError(where, "model.bidirectional: indrnn runs forward only")
        super().check_spec(options, spec, where)

    def build_core(self, input_size: int, options: Any) -> nn.Module:
        return IndRNNCore(input_size, options.hidden_size, options.num_layers, options.dropout,
                          options.recurrent_max)
