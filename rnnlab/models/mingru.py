"""The ``mingru`` and ``minlstm`` model families: ``MinStack`` built against the task's spec, with
the same embedding, pooling, heads, dropout, bidirectionality and forecasting as rnn/lstm/gru."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

import torch
from pydantic import Field
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.base import ParamGroup, State, init_feedforward_
from rnnlab.models.minrnn import GATES, MinStack
from rnnlab.models.recurrent import Recurrent, RecurrentOptions
from rnnlab.models.scan import FORMS
from rnnlab.registry import MODELS
from rnnlab.tasks.base import TaskSpec


class MinRNNOptions(RecurrentOptions):
    forget_bias: Optional[float] = Field(
        None, description="initial bias of the gate that keeps the state (minLSTM's f; minGRU's 1 - z, "
        "so z's bias is minus this): larger keeps memory longer at the start; default: PyTorch's init")
    chrono_init: Optional[Union[int, Literal["auto"]]] = Field(
        None, description="chrono initialisation (Tallec & Ollivier 2018) for dependencies up to T_max "
        "steps: the keeping gate's bias log(u), u ~ U[1, T_max - 1] per unit (the other gate's minus "
        "it), so units keep memory over 2 to T_max steps; auto: T_max = the task's sequence length "
        "(tasks with a fixed length); default: off")
    block: Literal["plain", "residual"] = Field(
        "plain", description="plain: layers stacked as in nn.GRU; residual: the paper's LM block "
        "(norm, minRNN, residual, feed-forward) per layer")
    norm: bool = Field(True, description="block: residual: LayerNorm before the minRNN and the feed-forward")
    ffn_mult: int = Field(4, ge=0, description="block: residual: feed-forward width / hidden_size (0: none)")
    conv: int = Field(0, ge=0, description="kernel of a short causal depthwise convolution before each "
                      "layer's recurrence (0: none; the paper uses 4)")
    scan: Literal[FORMS] = Field(  # type: ignore[valid-type]
        "auto", description="how a window is computed: fused (CPU), logspace (Heinsen's parallel "
        "scan, GPU), sequential (reference); auto picks by device. All compute the same function")


class MinRecurrent(Recurrent):
    """Shared by both families; ``family`` picks the gates."""

    Options = MinRNNOptions
    family = "mingru"
    PARAM_GROUPS = {
        "no_decay": "biases and norm weights: train.lr, no weight decay (declared when "
                    "train.weight_decay > 0)",
    }

    @classmethod
    def check_options(cls, options: Any, where: str) -> None:
        if options.conv == 1:
            raise ConfigError(where, "model.conv: a kernel of 1 is no convolution over time; use 0 "
                              "(none) or >= 2")
        if options.chrono_init is not None:
            if options.forget_bias is not None:
                raise ConfigError(where, "model.chrono_init: sets the gate biases forget_bias would set; "
                                  "give one of the two")
            if options.chrono_init != "auto" and options.chrono_init < 2:
                raise ConfigError(where, f"model.chrono_init: T_max must be >= 2 (steps of memory), "
                                  f"got {options.chrono_init}")
        super().check_options(options, where)

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if options.tie_weights and options.block == "residual" and options.bidirectional:
            raise ConfigError(where, "model.tie_weights: not with a bidirectional residual stack")
        if options.chrono_init == "auto" and (spec.window is None or spec.window < 2):
            raise ConfigError(where, "model.chrono_init: auto takes T_max from the task's sequence length, "
                              "and this task has none fixed; give T_max (steps), e.g. chrono_init: 100")
        super().check_spec(options, spec, where)

    def parameter_groups(self, train: Any) -> list[ParamGroup]:
        """``no_decay``: every vector (biases, norm weights), when ``train.weight_decay`` > 0. Decay
        would pull the gates' biases, which set how long each unit remembers (``forget_bias``,
        ``chrono_init``), back to an even keep/write split, and the norms' gains to 0. Without weight
        decay there is one group, as before (so older runs resume unchanged)."""
        if not train.weight_decay:
            return []
        return [ParamGroup("no_decay", [p for p in self.parameters() if p.dim() < 2], weight_decay=0.0)]

    def export_module(self) -> nn.Module:
        """A copy whose layers run the ``loop`` form (see ``scan.py``): what the exporters can trace."""
        import copy

        from rnnlab.models.minrnn import MinLayer

        twin = copy.deepcopy(self)
        for layer in twin.modules():
            if isinstance(layer, MinLayer):
                layer.form = "loop"
        return twin

    def build_core(self, input_size: int, options: Any) -> nn.Module:
        o = options
        return MinStack(self.family, input_size, o.hidden_size, o.num_layers, o.bidirectional,
                        o.dropout, o.block, o.norm, o.ffn_mult, o.conv, o.scan)

    def head_features(self) -> int:
        o, features = self.options, self.rnn.features
        if o.block == "residual" and o.bidirectional and self.spec.output == "last" and o.pooling == "last":
            features *= 2  # the last step's and the first step's outputs
        return features

    def run(self, x: torch.Tensor, lengths: Optional[torch.Tensor], state: State
            ) -> tuple[torch.Tensor, State]:
        return self.rnn(x, state, lengths)

    def summary(self, out: torch.Tensor, state: State, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        if self.options.pooling != "last" or self.options.block == "plain":
            return super().summary(out, state, lengths)
        # residual: the stream's output at the real last step (and the first, for the reverse pass)
        last = (torch.full((out.shape[0],), out.shape[1] - 1, device=out.device) if lengths is None
                else lengths.to(out.device) - 1)
        final = out[torch.arange(out.shape[0], device=out.device), last]
        return final if self.directions == 1 else torch.cat([final, out[:, 0]], dim=-1)

    def reset_parameters_(self) -> None:
        """``init``: default (PyTorch's), normal (weights N(0, init_std), biases 0) or orthogonal
        (no matrix here is recurrent, so every matrix gets xavier as the classic families' input
        weights do, biases 0). Norms keep weight 1, bias 0. Then ``forget_bias`` or ``chrono_init``."""
        o = self.options
        if o.init != "default":
            for module in self.modules():
                if not isinstance(module, nn.LayerNorm):
                    init_feedforward_(module, o)
        if o.chrono_init is not None:
            self.chrono_(self.spec.window if o.chrono_init == "auto" else o.chrono_init)
        if o.forget_bias is None:
            return
        value = -o.forget_bias if self.family == "mingru" else o.forget_bias
        with torch.no_grad():
            for layer in self.rnn.layers:
                layer.proj.bias.view(layer.directions, GATES[self.family], -1)[:, 0] = value

    def chrono_(self, t_max: int) -> None:
        """Chrono initialisation: the keeping gate's bias ``log(u)``, ``u ~ U[1, t_max - 1]`` (drawn
        from torch's generator, i.e. ``train.seed``), and the other gate's ``-log(u)``. At a zero input
        a unit then keeps ``u / (1 + u)`` of its state per step: a memory of ``1 + u`` steps, spread
        over 2 .. ``t_max``. minGRU: ``1 - z = sigmoid(-b_z)``, so ``b_z = -log(u)``; minLSTM:
        ``f' = f / (f + i)`` with ``b_f = log(u)``, ``b_i = -log(u)``."""
        with torch.no_grad():
            for layer in self.rnn.layers:
                bias = layer.proj.bias.view(layer.directions, GATES[self.family], -1)
                keep = torch.empty_like(bias[:, 0]).uniform_(1.0, max(1.0, t_max - 1.0)).log_()
                if self.family == "mingru":
                    bias[:, 0] = -keep
                else:
                    bias[:, 0], bias[:, 1] = keep, -keep


@MODELS.register("mingru", "minGRU (Feng et al. 2024): gates from the input only, parallel/fused "
                 "scan; num_layers, block plain|residual, conv, bidirectional, dropout")
class MinGRU(MinRecurrent):
    family = "mingru"


@MODELS.register("minlstm", "minLSTM (Feng et al. 2024): normalised forget/input gates, parallel/"
                 "fused scan; num_layers, block plain|residual, conv, bidirectional, dropout")
class MinLSTM(MinRecurrent):
    family = "minlstm"
