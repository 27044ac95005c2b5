"""Vanilla RNN, LSTM and GRU: one class, built against the task's spec, around a recurrent core
(``Recurrent.build_core``; a plugin's own cell is one more core).

Variable-length batches are packed (``enforce_sorted=False``) so a sequence's representation never
depends on the padding it was batched with; the last-step summary comes from ``h_n`` (the state at
each sequence's real last step), split into layers and directions.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.errors import ConfigError
from rnnlab.models.base import Model, ModelOptions, State
from rnnlab.models.dropout import Dropout
from rnnlab.models.elman import ElmanRNN
from rnnlab.registry import MODELS
from rnnlab.tasks.base import TaskSpec


class RecurrentOptions(ModelOptions):
    hidden_size: int = Field(64, gt=0)
    num_layers: int = Field(1, gt=0)
    dropout: float = Field(
        0.0, ge=0, lt=1,
        description="between stacked layers and on the last layer's output (so it acts with 1 layer too)")
    bidirectional: bool = Field(False, description="not allowed for causal tasks")
    embedding_dim: int = Field(64, gt=0, description="token tasks: embedding size")
    embedding_dropout: Optional[float] = Field(
        None, ge=0, lt=1, description="token tasks: dropout on the embeddings (default: model.dropout)")
    one_hot: bool = Field(False, description="token tasks: one-hot inputs instead of an embedding")
    tie_weights: bool = Field(False, description="token->token tasks: share embedding and output weights")
    embedding_vectors: Optional[str] = Field(
        None, description="token tasks: pretrained word vectors (word2vec/GloVe/fastText .vec text, "
        "optionally .gz) for the vocabulary's words; dimension = embedding_dim")
    freeze_embeddings: bool = Field(False, description="keep the pretrained embedding fixed in training")
    pooling: Literal["last", "mean", "max"] = Field(
        "last", description="last-step tasks: final state(s), or mean/max over real steps")


class RNNOptions(RecurrentOptions):
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class LSTMOptions(RecurrentOptions):
    forget_bias: Optional[float] = Field(
        None, description="initial forget-gate bias (e.g. 1.0: gates start open, so memory and "
        "gradients last longer); default: PyTorch's init")


class Recurrent(Model):
    Options = RecurrentOptions
    cell: type[nn.RNNBase] = nn.LSTM

    @classmethod
    def check_options(cls, options: Any, where: str) -> None:
        if options.freeze_embeddings and options.embedding_vectors is None:
            raise ConfigError(where, "model.freeze_embeddings: needs model.embedding_vectors (the "
                              "pretrained vectors to keep fixed)")
        if options.freeze_embeddings and options.tie_weights:
            raise ConfigError(where, "model.freeze_embeddings: not with model.tie_weights (the output "
                              "layer shares the embedding's weights, so it would be frozen too)")

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if options.embedding_vectors is not None and (spec.input_kind != "tokens" or options.one_hot):
            raise ConfigError(where, "model.embedding_vectors: needs token inputs with an embedding "
                              "(a token task, model.one_hot: false)")
        if options.bidirectional and spec.causal:
            raise ConfigError(where, "model.bidirectional: not allowed for this task: it is causal "
                              "(a backward pass would read the future it must predict)")
        if options.tie_weights:
            if spec.input_kind != "tokens" or options.one_hot:
                raise ConfigError(where, "model.tie_weights: needs token inputs with an embedding")
            dirs = 2 if options.bidirectional else 1
            if options.hidden_size * dirs != options.embedding_dim or spec.output_size != spec.input_size:
                raise ConfigError(where, "model.tie_weights: needs hidden_size (x2 if bidirectional) "
                                  f"== embedding_dim, got {options.hidden_size} and {options.embedding_dim}")
        if spec.output == "horizon" and spec.output_size != spec.input_size:
            raise ConfigError(where, "model: horizon forecasting feeds predictions back, so output "
                              "and input sizes must match")

    def __init__(self, options: RecurrentOptions, spec: TaskSpec) -> None:
        super().__init__(options, spec)
        o = options
        self.directions = 2 if o.bidirectional else 1
        if spec.input_kind == "tokens":
            self.embed: Optional[nn.Embedding] = (None if o.one_hot
                                                  else nn.Embedding(spec.input_size, o.embedding_dim))
            in_size = spec.input_size if o.one_hot else o.embedding_dim
        else:
            self.embed = None
            in_size = spec.input_size
        self.rnn = self.build_core(in_size, o)
        self.drop = Dropout(o.dropout)
        self.embed_drop = Dropout(o.dropout if o.embedding_dropout is None else o.embedding_dropout)
        self.head = nn.Linear(self.head_features(), spec.output_size)
        if o.tie_weights and self.embed is not None:
            self.head.weight = self.embed.weight
        if o.freeze_embeddings and self.embed is not None:  # out of the optimizer (also on resume)
            self.embed.weight.requires_grad_(False)

    def head_features(self) -> int:
        """What the head reads per prediction: the core's output (all directions)."""
        return self.options.hidden_size * self.directions

    # ------------------------------------------------------------------ pieces
    def build_core(self, input_size: int, options: Any) -> nn.Module:
        """The recurrent core, which everything else here (embedding, one-hot, tying, pooling, the
        head, forecasting, ``init``, gradflow) wraps. The built-ins use ``cls.cell``, a torch RNN
        module, packed for variable lengths. A subclass may return any module with
        ``forward(x, lengths, state) -> (out, final_state)``: ``x`` (B, T, input_size), ``lengths``
        (B,) or None, ``out`` (B, T, directions * hidden_size) with each sequence's padded steps
        ignored, and ``final_state`` the state after each sequence's real last step, shaped as
        torch's ``h_n`` (num_layers * directions, B, hidden_size) or a tuple whose first item is.
        For gradflow such a core defines ``recorder = None`` and, when gradflow sets it, hands
        every h_t over with ``recorder.keep_states(label, hs, real, order)``."""
        kwargs: dict[str, Any] = {}
        if issubclass(self.cell, nn.RNN):
            kwargs["nonlinearity"] = options.nonlinearity
        return self.cell(input_size, options.hidden_size, num_layers=options.num_layers, batch_first=True,
                         dropout=options.dropout if options.num_layers > 1 else 0.0,
                         bidirectional=options.bidirectional, **kwargs)

    def encode_inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.input_kind != "tokens":
            return x
        if self.embed is None:
            return nn.functional.one_hot(x, self.spec.input_size).float()
        return self.embed_drop(self.embed(x))

    def run(self, x: torch.Tensor, lengths: Optional[torch.Tensor], state: State
            ) -> tuple[torch.Tensor, State]:
        if not isinstance(self.rnn, nn.RNNBase):  # a core of the (x, lengths, state) contract
            return self.rnn(x, lengths, state)
        if lengths is None:
            return self.rnn(x, state)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, state

    def summary(self, out: torch.Tensor, state: State, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """One vector per sequence for last-step tasks."""
        pooling = self.options.pooling
        if pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            layers = self.options.num_layers
            last = h_n.view(layers, self.directions, h_n.shape[1], h_n.shape[2])[-1]
            return last[0] if self.directions == 1 else torch.cat(list(last), dim=-1)  # (B, dirs*H)
        if lengths is None:
            return out.mean(1) if pooling == "mean" else out.amax(1)
        steps = torch.arange(out.shape[1], device=out.device)
        mask = (steps[None, :] < lengths.to(out.device)[:, None]).unsqueeze(-1)
        if pooling == "mean":
            return (out * mask).sum(1) / lengths.to(out.device, out.dtype).clamp(min=1)[:, None]
        return out.masked_fill(~mask, float("-inf")).amax(1)

    # ------------------------------------------------------------------ API
    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: State = None
                ) -> tuple[torch.Tensor, State]:
        out, state = self.run(self.encode_inputs(x), lengths, state)
        if self.spec.output == "sequence":
            return self.head(self.drop(out)), state
        return self.head(self.drop(self.summary(out, state, lengths))), state

    def forecast(self, x: torch.Tensor, horizon: int) -> torch.Tensor:
        """Read the window once, then feed each prediction back as the next input, carrying state."""
        out, state = self.run(x, None, None)
        pred = self.head(self.drop(out[:, -1:]))
        preds = [pred]
        for _ in range(horizon - 1):
            out, state = self.run(pred, None, state)
            pred = self.head(self.drop(out))
            preds.append(pred)
        return torch.cat(preds, dim=1)


@MODELS.register("rnn", "vanilla (Elman) RNN, tanh or relu; num_layers, bidirectional, dropout")
class VanillaRNN(Recurrent):
    Options = RNNOptions
    cell = ElmanRNN  # nn.RNN with a faster CPU path


@MODELS.register("lstm", "LSTM; num_layers, bidirectional, dropout")
class LSTM(Recurrent):
    Options = LSTMOptions
    cell = nn.LSTM

    def reset_parameters_(self) -> None:
        super().reset_parameters_()
        bias = self.options.forget_bias  # type: ignore[attr-defined]
        if bias is None:
            return
        # gates are stacked i, f, g, o; the two bias vectors add up, so one carries the value
        size = self.options.hidden_size  # type: ignore[attr-defined]
        with torch.no_grad():
            for name, param in self.rnn.named_parameters():
                if name.startswith("bias_"):
                    param[size:2 * size] = bias if name.startswith("bias_ih") else 0.0


@MODELS.register("gru", "GRU; num_layers, bidirectional, dropout")
class GRU(Recurrent):
    cell = nn.GRU
