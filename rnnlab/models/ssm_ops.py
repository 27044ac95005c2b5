"""The numeric operations of the ``s4d`` family (``rnnlab.models.ssm``): the powers of ``Abar``, the
causal FFT convolution with its hand-written backward, the final state and the last step's output
from inputs read backwards, and the channel-first layout casts between the FFT and the linear layers.
Plain functions of tensors, tested against the recurrence in ``tests/test_ssm.py``."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch


def recurrence_dtype(dtype: torch.dtype) -> torch.dtype:
    """Float32 for half-precision activations (autocast): the FFT and the state stay float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


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


def backwards(u: torch.Tensor, lengths: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """u (B, H, T) read backwards from each sequence's last real step, zeros before its start, and
    the lengths (B,): ``back[..., j] = u[..., L - 1 - j]``."""
    batch, channels, steps = u.shape
    if lengths is None:
        return u.flip(2), torch.full((batch,), steps, device=u.device)
    ends = lengths.to(u.device)
    index = ends[:, None] - 1 - torch.arange(steps, device=u.device)  # (B, T)
    back = u.gather(2, index.clamp(min=0)[:, None, :].expand(-1, channels, -1))
    return back * (index >= 0)[:, None, :].to(u.dtype), ends


def at_last_steps(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """x (B, T, H) at each sequence's last real step: (B, H)."""
    if lengths is None:
        return x[:, -1]
    return x[torch.arange(x.shape[0], device=x.device), lengths.to(x.device) - 1]


def final_state(u: torch.Tensor, lengths: Optional[torch.Tensor], s0: Optional[torch.Tensor],
                dtA: torch.Tensor, bbar: torch.Tensor, abar_l: torch.Tensor) -> torch.Tensor:
    """``s_L = Abar^L s0 + Bbar sum_(j<L) Abar^j u_(L-1-j)`` at each sequence's length ``L``, u
    (B, H, T): the inputs read backwards from each one's last real step (zeros before its start),
    then two real matrix products with the powers ``abar_l`` (H, N/2, T)."""
    back, ends = backwards(u, lengths)
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
