"""The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` of minGRU/minLSTM, in three exact forms.

Everything is time-major: ``a``, ``b`` (T, B, H), an optional initial state ``h0`` (B, H) (None:
zeros), and the result is every state (T, B, H).

- ``sequential``: one autograd-recorded step per time step. The reference, and what a one-step
  call (generation) uses.
- ``fused``: the same loop inside one ``torch.autograd.Function`` with a hand-written backward,
  the reverse linear recurrence ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, then ``dL/da_t = g_t h_{t-1}``,
  ``dL/db_t = g_t`` and ``dL/dh0 = a_0 g_0`` for all steps at once. Autograd keeps one node instead
  of T, each step is one fused multiply-add on a contiguous slice, the gates are computed once (the
  forward keeps the factors the backward needs) from separate contiguous pre-activations, and
  comparisons and ``where`` (several times dearer than arithmetic on the CPU) are avoided: the
  fastest exact form found for the CPU (a chunked cumprod/cumsum scan divides by cumulative
  products, which underflow, so it is not exact on long sequences; the log-space scan pays for
  exp/log of every element; cutting time into cache-sized chunks, measured, gained nothing).
- ``logspace``: the parallel scan of Heinsen (2023) as in Feng et al. (2024):
  ``log h_t = a*_t + logcumsumexp_t(log b_t - a*_t)`` with ``a*_t = sum_{s<=t} log a_s``. It needs
  ``b > 0`` and ``h0 > 0``, which the families guarantee (``h~ = g(.) > 0`` and convex gates). A few
  kernels over the whole window, no loop over time: the GPU form.

``auto`` is ``fused`` on the CPU and ``logspace`` elsewhere (see ``benchmarks/scan.py``). ``loop``
(not a config choice: ``rnnlab export`` sets it) is the sequential form as a TorchScript function,
whose loop over time survives tracing, so ONNX and TorchScript files keep a dynamic time axis
(``fused`` is a Python ``autograd.Function`` the exporters cannot see into, and ONNX has no
``logcumsumexp`` for ``logspace``).
Padded steps (past a sequence's length) are given ``a = 1, b = 0`` (``log a = 0, log b = -inf``) by
the caller, so they leave the state unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import torch
from torch.autograd.function import once_differentiable

from rnnlab.models.elman import _float32_forward, _matching_backward

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


def _loop(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    h = h0
    hs: list[torch.Tensor] = []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        hs.append(h)
    return torch.stack(hs)


@functools.lru_cache(maxsize=None)
def scripted_loop() -> Any:
    """``sequential`` as a TorchScript function (compiled on first use: the export form)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation note
        return torch.jit.script(_loop)


def _step(x: torch.Tensor) -> torch.Tensor:
    """1 where x > 0, else 0, in float arithmetic (a comparison and ``where`` on bool tensors cost
    several times an arithmetic pass on the CPU)."""
    return x.clamp(0, 1).ceil_()


def _fused_gates(family: str, pre: tuple[torch.Tensor, ...], mask: Optional[torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """From the contiguous gate pre-activations ``pre`` (each (T, B, H)): the recurrence's ``a`` and
    ``b``, ``h~`` and the factors that turn the gradient reaching ``h_t`` into the pre-activations'
    gradients, so that the backward recomputes nothing.

    With ``g_t`` the gradient reaching ``h_t`` and ``q = g_t (h~_t - h_{t-1})``: minGRU
    ``dL/dk_z = q z(1-z)``, ``dL/dk_h = g_t z g'``; minLSTM ``dL/dk_f = -q f(1-f) i/(f+i)^2``,
    ``dL/dk_i = q i(1-i) f/(f+i)^2``, ``dL/dk_h = g_t i/(f+i) g'``, where ``g(x) = sigmoid(min(x,
    0)) + max(x, 0)`` and ``g'(x) = s(1-s)`` below zero, 1 above (s = sigmoid(min(x, 0)); at exactly
    0 the left derivative). Masked steps are identities (``a = 1, b = 0``) with zero factors."""
    kc = pre[-1]
    s = kc.clamp(max=0).sigmoid_()
    cand = kc.relu().add_(s)  # g(k_h) > 0
    slope = torch.addcmul(s, s, s, value=-1).add_(_step(kc), alpha=0.75)  # g'; s = 1/2 above 0
    if family == "mingru":
        z = torch.sigmoid(pre[0])
        a = torch.sub(1.0, z)
        factors: tuple[torch.Tensor, ...] = (z * a, slope.mul_(z))
        b = z.mul_(cand)
    else:
        f, i = torch.sigmoid(pre[0]), torch.sigmoid(pre[1])
        inv = torch.add(f, i).reciprocal_()
        a = f * inv
        b = i * inv
        fi = inv.square_().mul_(f).mul_(i)  # f i / (f + i)^2
        factors = (torch.sub(f, 1).mul_(fi), torch.sub(1, i).mul_(fi), slope.mul_(b))
        b.mul_(cand)
    if mask is not None:
        a.masked_fill_(~mask, 1.0)
        b.masked_fill_(~mask, 0.0)
        for factor in factors:
            factor.masked_fill_(~mask, 0.0)
    return a, b, cand, factors


class _Fused(torch.autograd.Function):
    """Gates and recurrence of one direction in one node: mask (T, B, 1) or None, h0 (B, H) or
    None, the gate pre-activations (each (T, B, H): minGRU k_z, k_h; minLSTM k_f, k_i, k_h) ->
    (every state (T, B, H), the last state (B, H)). Separate contiguous gates, not one (T, B, G, H)
    projection: elementwise kernels on a strided slice cost two to three times more."""

    @staticmethod
    @_float32_forward
    def forward(ctx: Any, mask: Optional[torch.Tensor], h0: Optional[torch.Tensor], family: str,
                *pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, hs, cand, factors = _fused_gates(family, tuple(t.contiguous() for t in pre), mask)
        if h0 is not None:  # hs holds b, overwritten in place: h_t = a_t h_{t-1} + b_t
            hs[0].addcmul_(a[0], h0)
        for t in range(1, hs.shape[0]):
            hs[t].addcmul_(a[t], hs[t - 1])
        ctx.save_for_backward(h0, hs, a, cand, *factors)
        ctx.set_materialize_grads(False)
        return hs, hs[-1].clone()

    @staticmethod
    @once_differentiable
    @_matching_backward
    def backward(ctx: Any, grad_hs: Optional[torch.Tensor], grad_last: Optional[torch.Tensor]
                 ) -> tuple[Optional[torch.Tensor], ...]:
        h0, hs, a, cand, *factors = ctx.saved_tensors
        # g_t, the total gradient reaching h_t: the reverse recurrence g_t = dL/dh_t + a_{t+1} g_{t+1}
        grad = torch.zeros_like(hs) if grad_hs is None else grad_hs.contiguous().clone()
        if grad_last is not None:
            grad[-1].add_(grad_last)
        for t in range(grad.shape[0] - 2, -1, -1):
            grad[t].addcmul_(a[t + 1], grad[t + 1])
        grad_h0 = None if h0 is None else grad[0] * a[0]
        q = torch.empty_like(hs)  # g_t (h~_t - h_{t-1})
        torch.sub(cand[1:], hs[:-1], out=q[1:])
        q[0] = cand[0] if h0 is None else cand[0] - h0
        q.mul_(grad)
        grads = [q * factor for factor in factors[:-1]] + [grad.mul_(factors[-1])]
        return (None, grad_h0, None, *grads)


def fused(family: str, pre: tuple[torch.Tensor, ...], mask: Optional[torch.Tensor],
          h0: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU form: (every state, the last state) of one direction from its gate pre-activations."""
    return _Fused.apply(mask, h0, family, *pre)


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
    if form == "loop":
        return scripted_loop()(a, b, torch.zeros_like(b[0]) if h0 is None else h0)
    return sequential(a, b, h0)
