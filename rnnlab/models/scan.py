"""The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` of minGRU/minLSTM, in three exact forms.

Everything is time-major: ``a``, ``b`` (T, B, H), an optional initial state ``h0`` (B, H) (None:
zeros), and the result is every state (T, B, H).

- ``sequential``: one autograd-recorded step per time step. The reference, and what a one-step
  call (generation) uses.
- ``fused``: the same loop inside one ``torch.autograd.Function`` with a hand-written backward,
  the reverse linear recurrence ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, then ``dL/da_t = g_t h_{t-1}``,
  ``dL/db_t = g_t`` and ``dL/dh0 = a_0 g_0`` for all steps at once. Autograd keeps one node instead
  of T, each step is one fused multiply-add on a contiguous slice: the fastest exact form found for
  the CPU (a chunked cumprod/cumsum scan divides by cumulative products, which underflow, so it is
  not exact on long sequences; the log-space scan pays for exp/log of every element).
- ``logspace``: the parallel scan of Heinsen (2023) as in Feng et al. (2024):
  ``log h_t = a*_t + logcumsumexp_t(log b_t - a*_t)`` with ``a*_t = sum_{s<=t} log a_s``. It needs
  ``b > 0`` and ``h0 > 0``, which the families guarantee (``h~ = g(.) > 0`` and convex gates). A few
  kernels over the whole window, no loop over time: the GPU form.

``auto`` is ``fused`` on the CPU and ``logspace`` elsewhere (see ``benchmarks/scan.py``).
Padded steps (past a sequence's length) are given ``a = 1, b = 0`` (``log a = 0, log b = -inf``) by
the caller, so they leave the state unchanged.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch.autograd.function import once_differentiable

from .elman import _float32_forward, _matching_backward

FORMS = ("auto", "fused", "logspace", "sequential")


def resolve_form(form: str, device: torch.device) -> str:
    if form != "auto":
        return form
    return "fused" if device.type == "cpu" else "logspace"


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive activation for h~: x + 1/2 for x >= 0, sigmoid(x) below (continuous)."""
    return torch.sigmoid(x.clamp(max=0)) + x.clamp(min=0)


def log_g(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, (x.clamp(min=0) + 0.5).log(), -torch.nn.functional.softplus(-x))


def sequential(a: torch.Tensor, b: torch.Tensor, h0: Optional[torch.Tensor]) -> torch.Tensor:
    hs = []
    h = h0
    for a_t, b_t in zip(a.unbind(0), b.unbind(0)):
        h = b_t if h is None else torch.addcmul(b_t, a_t, h)
        hs.append(h)
    return torch.stack(hs)


def _gate_values(family: str, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Forward gate values from the projection ``p`` (T, B, G, H): minGRU (z, h~), minLSTM
    (f, i, f + i, h~)."""
    cand = g(p[:, :, -1])
    if family == "mingru":
        return torch.sigmoid(p[:, :, 0]), cand
    f, i = torch.sigmoid(p[:, :, 0]), torch.sigmoid(p[:, :, 1])
    return f, i, f + i, cand


class _Fused(torch.autograd.Function):
    """Gates and recurrence of one direction in one node: p (T, B, G, H), mask (T, B, 1) or None,
    h0 (B, H) or None -> (every state (T, B, H), the last state (B, H))."""

    @staticmethod
    @_float32_forward
    def forward(ctx: Any, p: torch.Tensor, mask: Optional[torch.Tensor], h0: Optional[torch.Tensor],
                family: str) -> tuple[torch.Tensor, torch.Tensor]:
        p = p.contiguous()
        values = _gate_values(family, p)
        if family == "mingru":
            z, cand = values
            a = torch.sub(1.0, z)
            b = z.mul_(cand)
        else:
            f, i, total, cand = values
            a = f.div_(total)
            b = i.div_(total).mul_(cand)
        if mask is not None:
            a.masked_fill_(~mask, 1.0)
            b.masked_fill_(~mask, 0.0)
        hs = b  # written in place: h_t = a_t h_{t-1} + b_t
        if h0 is not None:
            hs[0].addcmul_(a[0], h0)
        for t in range(1, hs.shape[0]):
            hs[t].addcmul_(a[t], hs[t - 1])
        ctx.save_for_backward(p, mask, h0, hs, a)
        ctx.family = family
        ctx.set_materialize_grads(False)
        return hs, hs[-1].clone()

    @staticmethod
    @once_differentiable
    @_matching_backward
    def backward(ctx: Any, grad_hs: Optional[torch.Tensor], grad_last: Optional[torch.Tensor]
                 ) -> tuple[Optional[torch.Tensor], ...]:
        p, mask, h0, hs, a = ctx.saved_tensors
        # g_t, the total gradient reaching h_t: the reverse recurrence g_t = dL/dh_t + a_{t+1} g_{t+1}
        grad = torch.zeros_like(hs) if grad_hs is None else grad_hs.contiguous().clone()
        if grad_last is not None:
            grad[-1].add_(grad_last)
        for t in range(grad.shape[0] - 2, -1, -1):
            grad[t].addcmul_(a[t + 1], grad[t + 1])
        grad_h0 = None if h0 is None else grad[0] * a[0]
        prev = torch.empty_like(hs)  # h_{t-1}
        prev[1:] = hs[:-1]
        prev[0] = 0.0 if h0 is None else h0
        grad_p = torch.empty_like(p)
        values = _gate_values(ctx.family, p)
        cand = values[-1]
        # d h~ / d(W_h x): 1 above zero, sigmoid' below
        slope = torch.where(p[:, :, -1] >= 0, 1.0, cand * (1 - cand))
        if ctx.family == "mingru":
            z = values[0]
            torch.mul(grad, prev.sub_(cand), out=grad_p[:, :, 0]).mul_(z).mul_(z - 1)  # dL/dz z(1-z)
            torch.mul(grad, z, out=grad_p[:, :, 1]).mul_(slope)
        else:
            f, i, total = values[:3]
            q = grad * prev.sub_(cand)  # dL/da - dL/db h~
            q.div_(total.square())
            torch.mul(q, i, out=grad_p[:, :, 0]).mul_(f).mul_(1 - f)
            torch.mul(q, f, out=grad_p[:, :, 1]).mul_(i).mul_(i - 1)
            torch.mul(grad, i.div_(total), out=grad_p[:, :, 2]).mul_(slope)
        if mask is not None:
            grad_p.masked_fill_(~mask.unsqueeze(2), 0.0)
        return grad_p, None, grad_h0, None


def fused(family: str, p: torch.Tensor, mask: Optional[torch.Tensor], h0: Optional[torch.Tensor]
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU form: (every state, the last state) of one direction from its projection."""
    return _Fused.apply(p, mask, h0, family)


def logspace(log_a: torch.Tensor, log_b: torch.Tensor, h0: Optional[torch.Tensor]) -> torch.Tensor:
    """Heinsen's scan on log gates; ``h0`` (positive) enters as a first term with ``log a = 0``."""
    if h0 is not None:
        log_a = torch.cat([log_a.new_zeros((1, *log_a.shape[1:])), log_a])
        log_b = torch.cat([h0.log().unsqueeze(0), log_b])
    a_star = log_a.cumsum(0)
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=0)
    h = log_h.exp()
    return h[1:] if h0 is not None else h


def run_scan(form: str, a: Optional[torch.Tensor], b: Optional[torch.Tensor],
             log_a: Optional[torch.Tensor], log_b: Optional[torch.Tensor],
             h0: Optional[torch.Tensor]) -> torch.Tensor:
    """``logspace`` reads the log gates, ``sequential`` the linear ones (``fused`` computes its
    gates itself: see ``fused``)."""
    if form == "logspace":
        assert log_a is not None and log_b is not None
        return logspace(log_a, log_b, h0)
    assert a is not None and b is not None
    return sequential(a, b, h0)
