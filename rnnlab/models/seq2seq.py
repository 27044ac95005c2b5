"""Encoder-decoder for multi-step forecasting: the encoder reads the window, the decoder starts
from its state and unrolls ``horizon`` steps, each fed its own previous prediction."""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from pydantic import Field
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.base import Model, ModelOptions, State
from rnnlab.models.elman import ElmanRNN
from rnnlab.registry import MODELS
from rnnlab.tasks.base import TaskSpec

CELLS = {"rnn": ElmanRNN, "lstm": nn.LSTM, "gru": nn.GRU}


class Seq2SeqOptions(ModelOptions):
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    hidden_size: int = Field(64, gt=0)
    num_layers: int = Field(1, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)


@MODELS.register("seq2seq", "encoder-decoder (rnn/lstm/gru cells) for multi-step forecasting")
class Seq2Seq(Model):
    Options = Seq2SeqOptions
    native_horizon = True

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if spec.output != "horizon" or spec.input_kind != "features":
            raise ConfigError(where, "model.name: 'seq2seq' is for multi-step forecasting "
                              "(e.g. task sine with mode: rollout)")

    def __init__(self, options: Seq2SeqOptions, spec: TaskSpec) -> None:
        super().__init__(options, spec)
        cell = CELLS[options.cell]
        drop = options.dropout if options.num_layers > 1 else 0.0
        size = spec.input_size
        self.encoder = cell(size, options.hidden_size, options.num_layers, batch_first=True, dropout=drop)
        self.decoder = cell(size, options.hidden_size, options.num_layers, batch_first=True, dropout=drop)
        self.drop = nn.Dropout(options.dropout)
        self.head = nn.Linear(options.hidden_size, spec.output_size)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: State = None
                ) -> tuple[torch.Tensor, State]:
        _, state = self.encoder(x, state)
        step = x[:, -1:, :]
        preds = []
        for _ in range(self.spec.horizon or 1):
            out, state = self.decoder(step, state)
            step = self.head(self.drop(out))
            preds.append(step)
        return torch.cat(preds, dim=1), state

    def forecast(self, x: torch.Tensor, horizon: int) -> torch.Tensor:
        return self(x)[0]
