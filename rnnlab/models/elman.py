"""A faster vanilla (Elman) RNN for the CPU: ``nn.RNN`` with a hand-written backward pass.

On the CPU, ``nn.RNN`` at small batches costs far more than its arithmetic: autograd records
several nodes per time step, and the backward pass walks them one by one (for hidden 64, batch 8,
28 steps: ~0.8 ms of the ~1.1 ms a forward and backward pass take). ``ElmanRNN`` has the same
parameters, state dict, options and results as ``nn.RNN`` (checkpoints are interchangeable), but
on the CPU each layer and direction is one autograd node:

- forward: the input projection of all steps in one matrix product, then per step one in-place
  ``addmm`` and the nonlinearity;
- backward: per step one fused multiply-add and one matrix product for the state gradient, then
  the weight, bias and input gradients of all steps in one matrix product each.

Packed sequences, unbatched inputs and other devices (cuDNN on CUDA) go to ``nn.RNN`` itself.
Under CPU autocast the layer computes in float32, as ``nn.RNN`` does there.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

# torch >= 2.4: CPU autocast runs the Function in float32 (as it runs nn.RNN). Older torch lacks
# these decorators; there ElmanRNN leaves autocast regions to nn.RNN (see ElmanRNN.forward).
_CPU_AMP = hasattr(torch.amp, "custom_fwd")
_float32_forward = (torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32) if _CPU_AMP
                    else (lambda fn: fn))
_matching_backward = torch.amp.custom_bwd(device_type="cpu") if _CPU_AMP else (lambda fn: fn)


class _ElmanLayer(torch.autograd.Function):
    """One layer, one direction, time-major: x (T, B, I), h0 (B, H) or None (zeros) -> every
    state (T, B, H)."""

    @staticmethod
    @_float32_forward
    def forward(ctx: Any, x: torch.Tensor, h0: Optional[torch.Tensor], w_ih: torch.Tensor, w_hh: torch.Tensor,
                b_ih: Optional[torch.Tensor], b_hh: Optional[torch.Tensor], relu: bool) -> torch.Tensor:
        steps, batch, _ = x.shape
        flat = x.reshape(steps * batch, -1)
        if b_ih is None:
            hs = flat.mm(w_ih.t())
        else:
            hs = torch.addmm(b_ih + b_hh, flat, w_ih.t())
        hs = hs.view(steps, batch, -1)
        w_hh_t, h = w_hh.t(), h0
        for h_t in hs.unbind(0):  # h_t = act(W_ih x_t + b + W_hh h_{t-1}), written in place
            if h is not None:
                h_t.addmm_(h, w_hh_t)
            h = h_t.relu_() if relu else h_t.tanh_()
        ctx.save_for_backward(x, h0, w_ih, w_hh, hs)
        ctx.relu, ctx.bias = relu, b_ih is not None
        return hs

    @staticmethod
    @once_differentiable
    @_matching_backward
    def backward(ctx: Any, grad_hs: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        x, h0, w_ih, w_hh, hs = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        slope = (hs > 0).to(hs.dtype) if ctx.relu else (hs * hs).neg_().add_(1)  # act'(pre-activation)
        # dz_t = (dL/dh_t from the output + dL/dh_t from step t+1) * act'_t: the first term for
        # all steps at once, the second (dz_{t+1} W_hh) step by step
        dz = torch.mul(grad_hs, slope, out=torch.empty_like(hs))  # contiguous, whatever grad_hs is
        dh = None
        for dz_t, slope_t in zip(reversed(dz.unbind(0)), reversed(slope.unbind(0))):
            if dh is not None:
                dz_t.addcmul_(dh, slope_t)
            dh = dz_t.mm(w_hh)
        flat_dz = dz.view(steps * batch, hidden)
        grad_x = flat_dz.mm(w_ih).view(steps, batch, -1)
        grad_w_ih = flat_dz.t().mm(x.reshape(steps * batch, -1))
        # sum over t of dz_t^T h_{t-1}
        grad_w_hh = dz[1:].reshape(-1, hidden).t().mm(hs[:-1].reshape(-1, hidden))
        if h0 is not None:
            grad_w_hh.addmm_(dz[0].t(), h0)
        grad_b = flat_dz.sum(0) if ctx.bias else None
        return grad_x, dh if h0 is not None else None, grad_w_ih, grad_w_hh, grad_b, grad_b, None


class ElmanRNN(nn.RNN):
    """``nn.RNN`` (same constructor, parameters and outputs) with the CPU path above."""

    def forward(self, input: Any, hx: Optional[torch.Tensor] = None) -> tuple[Any, torch.Tensor]:  # noqa: A002
        if (isinstance(input, PackedSequence) or input.dim() != 3 or input.device.type != "cpu"
                or self.proj_size or (not _CPU_AMP and torch.is_autocast_cpu_enabled())):
            return super().forward(input, hx)
        x = input.transpose(0, 1) if self.batch_first else input
        dirs = 2 if self.bidirectional else 1
        if hx is not None:
            self.check_forward_args(input, hx, None)
        relu = self.nonlinearity == "relu"
        finals = []
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                x = nn.functional.dropout(x, self.dropout, training=True)
            outs = []
            for direction in range(dirs):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                seq = x.flip(0) if direction else x
                h0 = None if hx is None else hx[layer * dirs + direction]
                weights = [getattr(self, name + suffix, None)
                           for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                hs = _ElmanLayer.apply(seq.contiguous(), h0, *weights, relu)
                finals.append(hs[-1])
                outs.append(hs.flip(0) if direction else hs)
            x = outs[0] if dirs == 1 else torch.cat(outs, dim=-1)
        out = x.transpose(0, 1) if self.batch_first else x
        return out, finals[0].unsqueeze(0) if len(finals) == 1 else torch.stack(finals)
