"""The feed-forward baseline: a fixed window of past values, flattened (d2l's sine MLP)."""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from pydantic import Field
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.base import Model, ModelOptions, State
from rnnlab.registry import MODELS
from rnnlab.tasks.base import TaskSpec


class MLPOptions(ModelOptions):
    hidden_sizes: list[int] = Field(default_factory=lambda: [10], description="hidden layer widths")
    activation: Literal["relu", "tanh"] = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)


@MODELS.register("mlp", "feed-forward baseline on a flattened fixed-length window")
class MLP(Model):
    Options = MLPOptions
    fixed_window = True

    @classmethod
    def check_options(cls, options: Any, where: str) -> None:
        bad = [h for h in options.hidden_sizes if h <= 0]
        if bad:
            raise ConfigError(where, f"model.hidden_sizes: every width must be > 0, got {bad[0]}")

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if spec.window is None or spec.input_kind != "features" or spec.output == "sequence":
            raise ConfigError(where, "model.name: 'mlp' needs fixed-length feature windows and one "
                              "prediction per window (e.g. task sine with mode: window or rollout)")

    def __init__(self, options: MLPOptions, spec: TaskSpec) -> None:
        super().__init__(options, spec)
        act = nn.ReLU if options.activation == "relu" else nn.Tanh
        assert spec.window is not None
        layers: list[nn.Module] = []
        width = spec.window * spec.input_size
        for size in options.hidden_sizes:
            layers += [nn.Linear(width, size), act(), nn.Dropout(options.dropout)]
            width = size
        layers.append(nn.Linear(width, spec.output_size))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: State = None
                ) -> tuple[torch.Tensor, State]:
        return self.net(x.flatten(1)), None
