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
from rnnlab.models.recurrent import Recurrent, RecurrentOptions
from rnnlab.registry import MODELS

FORMS = ("auto", "fft", "recurrent")


def recurrence_dtype(dtype: torch.dtype) -> torch.dtype:
    """Float32 for half-precision activations (autocast): the FFT and the state stay float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


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

    def __init__(self, channels: int, d_state: int, init: str) -> None:
        super().__init__()
        self.kernel = S4DKernel(channels, d_state, init)

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


def powers(dtA: torch.Tensor, steps: int) -> torch.Tensor:
    """``Abar^l = exp(dt A l)`` for ``l < steps``, (H, N/2, steps): exponentials at about
    2 sqrt(steps) points and their products (a complex exp costs far more than a product)."""
    block = max(1, math.isqrt(steps))
    count = -(-steps // block)
    real = dtA.real.dtype
    low = torch.exp(dtA[..., None] * torch.arange(block, device=dtA.device, dtype=real))
    high = torch.exp(dtA[..., None] * (block * torch.arange(count, device=dtA.device, dtype=real)))
    return (high[..., :, None] * low[..., None, :]).flatten(-2)[..., :steps]


class _CausalConv(torch.autograd.Function):
    """``y = (K * u)[:T]``, the causal convolution of u (B, H, T) with K (H, T), by real FFTs of
    length 2T: two large transforms forward and two backward (autograd of rfft/irfft takes complex
    ones). Backward: ``du = irfft(G conj(K^))[:T]``, ``dK = irfft(sum_b G conj(U^))[:T]`` with
    ``G = rfft(dy, 2T)``."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        y, spectrum_u, spectrum_k = convolve(u, kernel)
        ctx.save_for_backward(spectrum_u, spectrum_k)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spectrum_u, spectrum_k = ctx.saved_tensors
        steps = grad.shape[-1]
        n = 2 * steps
        spectrum_g = torch.fft.rfft(grad, n=n)
        grad_u = torch.fft.irfft(spectrum_g * spectrum_k.conj(), n=n)[..., :steps]
        grad_k = torch.fft.irfft((spectrum_g * spectrum_u.conj()).sum(0), n=n)[..., :steps]
        return grad_u, grad_k


def convolve(u: torch.Tensor, kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, rfft(u), rfft(K))``: the causal convolution and the spectra its backward reads."""
    steps = u.shape[-1]
    n = 2 * steps
    spectrum_u = torch.fft.rfft(u, n=n)
    spectrum_k = torch.fft.rfft(kernel, n=n)
    return torch.fft.irfft(spectrum_u * spectrum_k, n=n)[..., :steps], spectrum_u, spectrum_k


def differentiable(*tensors: torch.Tensor) -> bool:
    """Whether a hand-written backward is needed (else plain ops: TorchScript can trace them)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def causal_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return _CausalConv.apply(u, kernel) if differentiable(u, kernel) else convolve(u, kernel)[0]


def final_state(u: torch.Tensor, lengths: Optional[torch.Tensor], s0: Optional[torch.Tensor],
                dtA: torch.Tensor, bbar: torch.Tensor, abar_l: torch.Tensor) -> torch.Tensor:
    """``s_L = Abar^L s0 + Bbar sum_(j<L) Abar^j u_(L-1-j)`` at each sequence's length ``L``, u
    (B, H, T): the inputs read backwards from each one's last real step (zeros before its start),
    then two real matrix products with the powers ``abar_l`` (H, N/2, T)."""
    batch, channels, steps = u.shape
    if lengths is None:
        back = u.flip(2)
        ends = torch.full((batch,), steps, device=u.device)
    else:
        ends = lengths.to(u.device)
        index = ends[:, None] - 1 - torch.arange(steps, device=u.device)  # (B, T)
        back = u.gather(2, index.clamp(min=0)[:, None, :].expand(-1, channels, -1))
        back = back * (index >= 0)[:, None, :].to(u.dtype)
    back = back.transpose(0, 1)  # (H, B, T)
    acc = torch.complex(torch.matmul(back, abar_l.real.transpose(1, 2)),
                        torch.matmul(back, abar_l.imag.transpose(1, 2)))  # (H, B, N/2)
    state = bbar[:, None] * acc
    if s0 is not None:
        state = state + torch.exp(dtA[:, None] * ends.to(u.dtype)[None, :, None]) * s0.transpose(0, 1)
    return state.transpose(0, 1)  # (B, H, N/2)


class _Rows(torch.autograd.Function):
    """(B, H, T) -> (B, T, H) contiguous in ``dtype``, one copy that transposes and casts; the
    gradient comes back the same way (contiguous, so that no elementwise kernel meets a strided
    tensor: GELU's backward on a transposed gradient is several times slower)."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        ctx.dtype = y.dtype
        return transposed(y, dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return transposed(grad, ctx.dtype), None


def transposed(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(y.shape[0], y.shape[2], y.shape[1], dtype=dtype, device=y.device)
    return out.copy_(y.transpose(1, 2))


def autocast_dtype(kind: str) -> Optional[torch.dtype]:
    """The dtype autocast runs linear layers in on device type ``kind``, or None when it is off."""
    if kind == "cpu" and not hasattr(torch, "get_autocast_dtype"):  # torch < 2.4
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    if kind == "cuda" and not hasattr(torch, "get_autocast_dtype"):
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


def rows(y: torch.Tensor, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """(B, H, T) -> (B, T, H) (or back) in ``dtype``, by default the one the next linear layer runs
    in (autocast's, else y's)."""
    if dtype is None:
        dtype = autocast_dtype(y.device.type) or y.dtype
    return _Rows.apply(y, dtype) if differentiable(y) else transposed(y, dtype)


class S4DBlock(nn.Module):
    """Norm, SSM + D skip, GELU, dropout, Linear H->2H + GLU, dropout, residual (pre- or post-norm)."""

    def __init__(self, channels: int, d_state: int, init: str, dropout: float, norm: str,
                 prenorm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels) if norm == "layer" else nn.Identity()
        self.prenorm = prenorm
        self.ssm = S4DLayer(channels, d_state, init)
        self.out = nn.Linear(channels, 2 * channels)
        self.dropout = dropout

    def forward(self, h: torch.Tensor, lengths: Optional[torch.Tensor], s0: Optional[torch.Tensor],
                want_state: bool, form: str) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        y = self.norm(h) if self.prenorm else h
        y, state = self.ssm(y, lengths, s0, want_state, form)  # (B, H, T)
        y = rows(F.dropout(F.gelu(y), self.dropout, self.training))
        y = F.dropout(F.glu(self.out(y), dim=-1), self.dropout, self.training)
        h = h + y.to(h.dtype)
        return (h if self.prenorm else self.norm(h)), state


class S4DStack(nn.Module):
    """Input projection then ``num_layers`` blocks, with the core contract of ``Recurrent.build_core``:
    ``(x (B, T, I), lengths, state) -> (out (B, T, H), final state or None)``. ``keep_state``
    (set by the model: per-step tasks) asks for the final state when none comes in."""

    #: ``precision: auto`` picks bf16 on a native-bf16 CPU: its linear layers run in bf16 (the FFT
    #: stays float32); a pixel-MNIST training step measured about 0.85-0.94 of fp32's time
    bf16_faster = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, d_state: int, init: str,
                 dropout: float, norm: str, prenorm: bool, form: str) -> None:
        super().__init__()
        self.form, self.hidden_size, self.num_layers = form, hidden_size, num_layers
        self.modes = d_state // 2
        self.keep_state = True
        self.in_proj = nn.Linear(input_size, hidden_size)
        self.blocks = nn.ModuleList(S4DBlock(hidden_size, d_state, init, dropout, norm, prenorm)
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

    def build_core(self, input_size: int, options: Any) -> nn.Module:
        o = options
        core = S4DStack(input_size, o.hidden_size, o.num_layers, o.d_state, o.ssm_init, o.dropout, o.norm,
                        o.prenorm, o.form)
        core.keep_state = self.spec.output != "last"  # last-step tasks carry no state between windows
        return core

    def summary(self, out: torch.Tensor, state: State, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        if self.options.pooling != "last":
            return super().summary(out, state, lengths)
        last = (torch.full((out.shape[0],), out.shape[1] - 1, device=out.device) if lengths is None
                else lengths.to(out.device) - 1)
        return out[torch.arange(out.shape[0], device=out.device), last]

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
