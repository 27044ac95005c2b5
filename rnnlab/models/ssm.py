"""The ``s4d`` family: diagonal state-space layers (S4D; Gu, Gupta, Goel and Re 2022) in residual blocks.

One layer maps each of ``H`` channels through its own linear time-invariant system with a complex
diagonal state of ``d_state / 2`` modes (conjugate symmetry: the other half are the conjugates, so
the output is ``2 Re(.)``), discretised by zero-order hold with a learned step ``dt`` per channel::

    s_t = Abar s_{t-1} + Bbar u_t,   y_t = 2 Re(C s_t) + D u_t,
    Abar = exp(dt A),   Bbar = (Abar - 1) / A   (B = 1, folded into C as in the minimal S4D)

with ``A = -exp(log_A_real) + i A_imag`` initialised S4D-Lin (``-1/2 + i pi n``) or S4D-Inv.
Two forms compute the same function (equal to 1e-6 in float64, ``tests/test_ssm.py``):

- ``fft``: the window as one causal convolution with the kernel ``K_l = 2 Re(C Bbar Abar^l)``,
  by ``torch.fft.rfft`` with ``n = 2T`` (O(T log T), no loop over time). A carried state adds its
  response ``2 Re(C Abar^(t+1) s_0)``; the final state at each sequence's own length is one
  contraction with the same powers ``Abar^j``, computed only when state is wanted.
- ``recurrent``: the recurrence above one step at a time (``auto`` uses it for one-step calls:
  generation, autoregressive forecasting).

Last-step tasks read with ``pooling: last`` compute the final block only at each sequence's last
real step (one contraction of the inputs read backwards with the kernel, no FFT); the numeric
operations live in ``rnnlab.models.ssm_ops``.

Padded steps (past a sequence's length) only reach outputs past that length (the convolution is
causal) and are left out of the final state. The state is a real tensor
``(num_layers, B, H, d_state / 2, 2)`` (``torch.view_as_real`` of the complex modes).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from rnnlab.errors import ConfigError
from rnnlab.models.base import ParamGroup, State, init_feedforward_
from rnnlab.models.dropout import dropout
from rnnlab.models.recurrent import Recurrent, RecurrentOptions
from rnnlab.models.ssm_ops import (
    at_last_steps,
    backwards,
    causal_conv,
    final_state,
    powers,
    recurrence_dtype,
    rows,
)
from rnnlab.registry import MODELS

FORMS = ("auto", "fft", "recurrent")


class S4DKernel(nn.Module):
    """The parameters of ``H`` diagonal systems and their discretisation."""

    def __init__(self, channels: int, d_state: int, init: str = "lin",
                 dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        modes = d_state // 2
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        n = torch.arange(modes, dtype=torch.float32)
        imag = math.pi * n if init == "lin" else d_state / math.pi * (d_state / (2 * n + 1) - 1)
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.full((channels, modes), math.log(0.5)))
        self.A_imag = nn.Parameter(imag.repeat(channels, 1))
        self.C = nn.Parameter(torch.randn(channels, modes, 2) * math.sqrt(0.5))  # complex, as (re, im)
        self.D = nn.Parameter(torch.randn(channels))

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(dt A, Bbar, C)``, complex (H, N/2) each."""
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        dtA = A * torch.exp(self.log_dt)[:, None]
        return dtA, torch.expm1(dtA) / A, torch.view_as_complex(self.C)


class S4DLayer(nn.Module):
    """One SSM over channels: u (B, T, H) real -> y (B, H, T) (channels first, float32 or float64:
    the FFT's layout) and the final state."""

    def __init__(self, channels: int, d_state: int, init: str, dt_range: tuple[float, float]) -> None:
        super().__init__()
        self.kernel = S4DKernel(channels, d_state, init, *dt_range)

    def forward(self, u: torch.Tensor, lengths: Optional[torch.Tensor], s0: Optional[torch.Tensor],
                want_state: bool, form: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        dtype = recurrence_dtype(u.dtype)
        with torch.autocast(u.device.type, enabled=False):  # the FFT and the state stay in float32/64
            dtA, bbar, C = self.kernel.discrete()
            if form == "recurrent":
                u = u.to(dtype)
                y, state = self.recurrent(u, lengths, s0, dtA.exp(), bbar, C)
                return (y + u * self.kernel.D).transpose(1, 2).contiguous(), state
            ut = rows(u, dtype)  # channels first (B, H, T), float32: one copy
            return self.convolution(ut, lengths, s0, want_state, dtA, bbar, C, self.kernel.D)

    def last_step(self, u: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """The output at each sequence's last real step only, u (B, T, H) -> (B, H): one contraction
        of the inputs read backwards with the kernel, O(B H T) and no FFT."""
        with torch.autocast(u.device.type, enabled=False):
            dtA, bbar, C = self.kernel.discrete()
            back = backwards(rows(u, recurrence_dtype(u.dtype)), lengths)[0]  # (B, H, T)
            kernel = 2 * torch.matmul((C * bbar)[:, None, :], powers(dtA, back.shape[2]))[:, 0].real
            return (back * kernel).sum(-1) + back[..., 0] * self.kernel.D

    @staticmethod
    def recurrent(u: torch.Tensor, lengths: Optional[torch.Tensor], s0: Optional[torch.Tensor],
                  abar: torch.Tensor, bbar: torch.Tensor, C: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference form: one step at a time; padded steps leave the state unchanged."""
        batch, steps, channels = u.shape
        s = s0 if s0 is not None else torch.zeros(batch, channels, abar.shape[1], dtype=C.dtype,
                                                  device=u.device)
        ys = []
        for t in range(steps):
            new = abar * s + bbar * u[:, t, :, None]
            ys.append(2 * (C * new).sum(-1).real)
            s = new if lengths is None else torch.where((t < lengths)[:, None, None], new, s)
        return torch.stack(ys, 1), s

    @staticmethod
    def convolution(u: torch.Tensor, lengths: Optional[torch.Tensor], s0: Optional[torch.Tensor],
                    want_state: bool, dtA: torch.Tensor, bbar: torch.Tensor, C: torch.Tensor,
                    D: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The FFT form on u (B, H, T), D folded into the kernel's first tap; the final state only
        when ``want_state`` (or a state came in)."""
        steps = u.shape[2]
        abar_l = powers(dtA, steps)
        kernel = 2 * torch.matmul((C * bbar)[:, None, :], abar_l)[:, 0].real  # (H, T)
        kernel = torch.cat([kernel[:, :1] + D[:, None], kernel[:, 1:]], dim=1)
        y = causal_conv(u, kernel)
        if s0 is not None:  # 2 Re(C Abar^(t+1) s0): the carried state's response
            response = torch.matmul((C * s0 * dtA.exp()).transpose(0, 1), abar_l)  # (H, B, T)
            y = y + 2 * response.real.transpose(0, 1)
        if not want_state and s0 is None:
            return y, None
        return y, final_state(u, lengths, s0, dtA, bbar, abar_l)


class S4DBlock(nn.Module):
    """Norm, SSM + D skip, GELU, dropout, Linear H->2H + GLU, dropout, residual (pre- or post-norm)."""

    def __init__(self, channels: int, d_state: int, init: str, dropout: float, norm: str,
                 prenorm: bool, dt_range: tuple[float, float]) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels) if norm == "layer" else nn.Identity()
        self.prenorm = prenorm
        self.ssm = S4DLayer(channels, d_state, init, dt_range)
        self.out = nn.Linear(channels, 2 * channels)
        self.dropout = dropout

    def forward(self, h: torch.Tensor, lengths: Optional[torch.Tensor], s0: Optional[torch.Tensor],
                want_state: bool, form: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        y = self.norm(h) if self.prenorm else h
        y, state = self.ssm(y, lengths, s0, want_state, form)  # (B, H, T)
        y = rows(dropout(F.gelu(y), self.dropout, self.training))
        y = dropout(F.glu(self.out(y), dim=-1), self.dropout, self.training)
        h = h + y.to(h.dtype)
        return (h if self.prenorm else self.norm(h)), state

    def last_step(self, h: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """The block's output at each sequence's last real step only: (B, T, H) -> (B, H)."""
        y = self.ssm.last_step(self.norm(h) if self.prenorm else h, lengths)
        y = dropout(F.glu(self.out(dropout(F.gelu(y), self.dropout, self.training)), dim=-1),
                    self.dropout, self.training)
        h = at_last_steps(h, lengths) + y.to(h.dtype)
        return h if self.prenorm else self.norm(h)


class S4DStack(nn.Module):
    """Input projection then ``num_layers`` blocks, with the core contract of ``Recurrent.build_core``:
    ``(x (B, T, I), lengths, state) -> (out (B, T, H), final state or None)``. ``keep_state``
    (set by the model: per-step tasks) asks for the final state when none comes in."""

    #: ``precision: auto`` picks bf16 on a native-bf16 CPU: its linear layers run in bf16 (the FFT
    #: stays float32); a pixel-MNIST training step measured about 0.85-0.94 of fp32's time
    bf16_faster = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, d_state: int, init: str,
                 dropout: float, norm: str, prenorm: bool, form: str,
                 dt_range: tuple[float, float] = (1e-3, 1e-1)) -> None:
        super().__init__()
        self.form, self.hidden_size, self.num_layers = form, hidden_size, num_layers
        self.modes = d_state // 2
        self.keep_state = True
        self.last_only = False  # set by the model: only each sequence's last output is read
        self.in_proj = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList(S4DBlock(hidden_size, d_state, init, dropout, norm, prenorm, dt_range)
                                    for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(hidden_size) if prenorm and norm == "layer" else nn.Identity()

    def export_state(self) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """The state's shape without the batch (at dim 1) and its dimensions' names, for export."""
        return ((self.num_layers, self.hidden_size, self.modes, 2),
                ("num_layers", "batch", "hidden_size", "d_state / 2", "real, imaginary"))

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: Any = None
                ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        form = self.form if self.form != "auto" else ("recurrent" if x.shape[1] == 1 else "fft")
        if lengths is not None:
            lengths = lengths.to(x.device)
            if bool((lengths >= x.shape[1]).all()):
                lengths = None
        want = self.keep_state or state is not None
        h = self.in_proj(x).to(recurrence_dtype(x.dtype))  # the residual stream: float32 under autocast
        if self.last_only and not want and form == "fft":  # (B, 1, H): the last block at the last steps
            for block in self.blocks[:-1]:
                h = block(h, lengths, None, False, form)[0]
            return self.final_norm(self.blocks[-1].last_step(h, lengths))[:, None], None
        finals = []
        for k, block in enumerate(self.blocks):
            s0 = None if state is None else torch.view_as_complex(state[k].contiguous())
            h, s = block(h, lengths, s0, want, form)
            finals.append(s)
        out = self.final_norm(h)
        if not want:
            return out, None
        return out, torch.stack([torch.view_as_real(s) for s in finals])



class S4DOptions(RecurrentOptions):
    dropout: float = Field(0.0, ge=0, lt=1, description="in each block after the activation and after the "
                           "GLU projection, and on the output before the head")
    d_state: int = Field(64, ge=2, multiple_of=2, description="state size N per channel (N/2 complex "
                         "modes are kept: conjugate symmetry)")
    ssm_init: Literal["lin", "inv"] = Field("lin", description="A's initialisation: S4D-Lin (-1/2 + i pi n) "
                                            "or S4D-Inv")
    dt_min: float = Field(1e-3, gt=0, description="smallest initial step dt (log-uniform per channel in "
                          "[dt_min, dt_max]); a channel remembers about 2 / dt steps at first")
    dt_max: float = Field(1e-1, gt=0, description="largest initial step dt; lower both for longer memory "
                          "from the start (e.g. 1e-4 .. 1e-2 for thousands of steps)")
    norm: Literal["layer", "none"] = Field("layer", description="LayerNorm in each block, or none")
    prenorm: bool = Field(False, description="norm before the SSM (and a final norm) instead of after "
                          "the residual")
    pooling: Literal["last", "mean", "max"] = Field(
        "mean", description="last-step tasks: mean/max over real steps, or the output at the last one")
    ssm_lr: Optional[float] = Field(None, gt=0, description="learning rate of the SSM parameters (log_dt, "
                                    "log_A_real, A_imag), no weight decay (default: min(train.lr, 1e-3))")
    form: Literal[FORMS] = Field(  # type: ignore[valid-type]
        "auto", description="fft: a window as one FFT convolution; recurrent: step by step (reference); "
        "auto: fft, recurrent for one-step calls. Both compute the same function")


@MODELS.register("s4d", "S4D diagonal state-space blocks (FFT convolution in training, a recurrence "
                 "when stepping); hidden_size, num_layers, d_state, pooling, dropout")
class S4D(Recurrent):
    Options = S4DOptions
    PARAM_GROUPS = {
        "ssm": "SSM dynamics (log_dt, log_A_real, A_imag): lr model.ssm_lr (default min(train.lr, 1e-3)), "
               "no weight decay",
        "no_decay": "norms, biases, C and D: train.lr, no weight decay",
    }
    export_refusals = {
        "onnx": "its FFT convolution and its state are complex-valued, which ONNX cannot express; "
                "--format torchscript exports it with the state as (x, h0) -> (out, hn)"}

    @classmethod
    def check_options(cls, options: Any, where: str) -> None:
        if options.bidirectional:
            raise ConfigError(where, "model.bidirectional: s4d is causal only (one direction)")
        if options.dt_min > options.dt_max:
            raise ConfigError(where, f"model.dt_min ({options.dt_min}) is above model.dt_max "
                              f"({options.dt_max})")

    def build_core(self, input_size: int, options: Any) -> nn.Module:
        o = options
        core = S4DStack(input_size, o.hidden_size, o.num_layers, o.d_state, o.ssm_init, o.dropout, o.norm,
                        o.prenorm, o.form, (o.dt_min, o.dt_max))
        core.keep_state = self.spec.output != "last"  # last-step tasks carry no state between windows
        core.last_only = self.spec.output == "last" and o.pooling == "last"
        return core

    def summary(self, out: torch.Tensor, state: State, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        if self.options.pooling != "last":
            return super().summary(out, state, lengths)
        if out.shape[1] == 1:  # one step: the core computed only the last ones (last_only), or T = 1
            return out[:, 0]
        return at_last_steps(out, lengths)

    def parameter_groups(self, train: Any) -> list[ParamGroup]:
        """``ssm``: the kernels' dynamics at ``ssm_lr``; ``no_decay``: norms, biases, C and D."""
        ssm_lr = self.options.ssm_lr or min(train.lr, 1e-3)
        dynamics, plain = [], []
        for name, param in self.named_parameters():
            leaf = name.rpartition(".")[2]
            if leaf in ("log_dt", "log_A_real", "A_imag"):
                dynamics.append(param)
            elif param.dim() < 2 or leaf == "C":
                plain.append(param)
        return [ParamGroup("ssm", dynamics, lr_scale=ssm_lr / train.lr, weight_decay=0.0),
                ParamGroup("no_decay", plain, weight_decay=0.0)]

    def reset_parameters_(self) -> None:
        """``init``: default (PyTorch's), normal (weights N(0, init_std), biases 0) or orthogonal
        (xavier, no matrix here is recurrent) for the linear layers and the embedding; the SSM
        kernels keep their S4D initialisation and the norms weight 1, bias 0."""
        o = self.options
        if o.init == "default":
            return
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                init_feedforward_(module, o)
