"""minGRU and minLSTM layers and stacks (Feng et al. 2024, "Were RNNs All We Needed?").

The gates read only the input, never the previous state, so a layer is one projection of every
step at once followed by the linear recurrence of ``scan.py``:

- minGRU: ``z = sigmoid(W_z x)``, ``h~ = g(W_h x)``, ``h_t = (1 - z_t) h_{t-1} + z_t h~_t``;
- minLSTM: ``f = sigmoid(W_f x)``, ``i = sigmoid(W_i x)``, ``f' = f / (f + i)``, ``i' = i / (f + i)``,
  ``h_t = f'_t h_{t-1} + i'_t h~_t``,

with the paper's positive ``g`` for ``h~`` in every form (the log-space scan needs ``h~ > 0``; the
other forms use it too so that all forms compute the same function).

``MinStack`` has ``nn.GRU``'s call contract (batch-first ``(x, state) -> (out, state)``) plus
``lengths``: steps at or past a sequence's length leave its state unchanged, so the final state is
each sequence's state at its real last step, and the reverse direction starts at that step.
``block: residual`` is the paper's language-model block: ``x + W_o minRNN(conv(norm(x)))`` then
``x + FFN(norm(x))``, with an input projection first and a final norm.
State: ``h`` (layers * directions, B, H), or with ``conv`` the tuple ``(h, tail_0, ...)`` holding
each layer's last ``conv - 1`` inputs, so a window continued from a carried state (truncated BPTT,
generation one step at a time) computes what the whole sequence would.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F

from rnnlab.models.dropout import dropout
from rnnlab.models.scan import fused, g, log_g, resolve_form, run_scan

GATES = {"mingru": 2, "minlstm": 3}  # projection blocks per direction: (z, h~) or (f, i, h~)


def gates(family: str, p: torch.Tensor, mask: Optional[torch.Tensor], log: bool
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` (or their logs) from the projection ``p`` (T, B, G, H); masked steps get the
    identity ``a = 1, b = 0``."""
    if family == "mingru":
        k, cand = p[:, :, 0], p[:, :, 1]
        if log:
            a, b = -F.softplus(k), -F.softplus(-k) + log_g(cand)
        else:
            z = torch.sigmoid(k)
            a, b = 1 - z, z * g(cand)
    else:
        kf, ki, cand = p[:, :, 0], p[:, :, 1], p[:, :, 2]
        if log:
            diff = F.softplus(-kf) - F.softplus(-ki)  # log i - log f
            a, b = -F.softplus(diff), -F.softplus(-diff) + log_g(cand)
        else:
            f, i = torch.sigmoid(kf), torch.sigmoid(ki)
            total = f + i
            a, b = f / total, i / total * g(cand)
    if mask is not None:
        a = torch.where(mask, a, 0.0 if log else 1.0)
        b = torch.where(mask, b, float("-inf") if log else 0.0)
    return a, b


def recurrence_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the recurrence runs in: float32 for half-precision inputs (autocast), else theirs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class MinLayer(nn.Module):
    """One layer, both directions, time-major: x (T, B, I) -> (out (T, B, D*H), h_n (D, B, H))."""

    def __init__(self, family: str, input_size: int, hidden_size: int, bidirectional: bool,
                 form: str) -> None:
        super().__init__()
        self.family, self.hidden_size, self.form = family, hidden_size, form
        self.directions = 2 if bidirectional else 1
        self.proj = nn.Linear(input_size, self.directions * GATES[family] * hidden_size)
        self.recorder: Any = None  # set by gradflow: keep every h_t
        self.label = "layer 0"

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], h0: Optional[torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        steps, batch, _ = x.shape
        form = "sequential" if steps == 1 or self.recorder is not None else resolve_form(self.form, x.device)
        if form == "fused":
            return self.forward_fused(x, mask, h0)
        proj = self.proj(x)
        proj = proj.to(recurrence_dtype(proj.dtype))
        proj = proj.view(steps, batch, self.directions, GATES[self.family], self.hidden_size)
        outs, finals = [], []
        for d in range(self.directions):
            p, m = proj[:, :, d], mask
            if d:  # padded steps are identities, so flipping the padded window is exact
                p, m = p.flip(0), (None if mask is None else mask.flip(0))
            start = None if h0 is None else h0[d].to(p.dtype)
            if self.recorder is not None:
                hs = self.recorded(p, m, start, d)
            else:
                log = form == "logspace"
                a, b = gates(self.family, p, m, log)
                hs = run_scan(form, None if log else a, None if log else b,
                              a if log else None, b if log else None, start)
            finals.append(hs[-1])
            outs.append(hs.flip(0) if d else hs)
        out = outs[0] if self.directions == 1 else torch.cat(outs, dim=-1)
        return out, torch.stack(finals)

    def forward_fused(self, x: torch.Tensor, mask: Optional[torch.Tensor], h0: Optional[torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused form: each gate's pre-activation from its own block of ``proj`` (contiguous,
        where one projection sliced per gate would be strided), then ``scan.fused``."""
        weight, bias, hidden = self.proj.weight, self.proj.bias, self.hidden_size
        outs, finals = [], []
        for d in range(self.directions):
            pre = []
            for k in range(GATES[self.family]):
                rows = slice((d * GATES[self.family] + k) * hidden, (d * GATES[self.family] + k + 1) * hidden)
                y = F.linear(x, weight[rows], bias[rows])
                pre.append(y.flip(0) if d else y)  # padded steps are identities: flipping is exact
            m = mask.flip(0) if mask is not None and d else mask
            start = None if h0 is None else h0[d].to(recurrence_dtype(pre[0].dtype))
            hs, last = fused(self.family, tuple(pre), m, start)
            finals.append(last)
            outs.append(hs.flip(0) if d else hs)
        out = outs[0] if self.directions == 1 else torch.cat(outs, dim=-1)
        return out, torch.stack(finals)

    def recorded(self, p: torch.Tensor, mask: Optional[torch.Tensor], h0: Optional[torch.Tensor],
                 direction: int) -> torch.Tensor:
        """The sequential form, handing every h_t (in the graph) to gradflow's recorder."""
        a, b = gates(self.family, p, mask, log=False)
        h, hs = h0, []
        for t in range(a.shape[0]):
            h = b[t] if h is None else torch.addcmul(b[t], a[t], h)
            hs.append(h)
        steps, batch = a.shape[:2]
        real = None if mask is None else mask[..., 0].t()
        if direction and real is not None:
            real = real.flip(1)
        order = None
        if direction:
            order = (steps - 1 - torch.arange(steps, device=a.device)).expand(batch, steps)
        self.recorder.keep_states(self.label + (" reverse" if direction else ""), hs, real, order)
        return torch.stack(hs)


class CausalConv(nn.Module):
    """Depthwise causal convolution over time (kernel ``k``), time-major, with a carried tail."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels)

    def forward(self, x: torch.Tensor, tail: Optional[torch.Tensor], lengths: Optional[torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        steps, batch, channels = x.shape
        if tail is None:
            tail = x.new_zeros(batch, self.kernel - 1, channels)
        padded = torch.cat([tail.to(x.dtype), x.transpose(0, 1)], dim=1)  # (B, k-1+T, C)
        out = self.conv(padded.transpose(1, 2)).permute(2, 0, 1)  # (T, B, C)
        if lengths is None:
            new_tail = padded[:, steps:]
        else:  # the last k-1 inputs up to each sequence's real end
            idx = lengths.to(x.device)[:, None] + torch.arange(self.kernel - 1, device=x.device)
            new_tail = padded.gather(1, idx[..., None].expand(-1, -1, channels))
        return out, new_tail


class MinStack(nn.Module):
    """Stacked minGRU/minLSTM layers (``block`` plain or residual), batch-first like ``nn.GRU``."""

    def __init__(self, family: str, input_size: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, block: str, norm: bool, ffn_mult: int,
                 conv: int, form: str) -> None:
        super().__init__()
        self.family, self.hidden_size, self.num_layers = family, hidden_size, num_layers
        self.directions = 2 if bidirectional else 1
        self.residual = block == "residual"
        self.dropout = dropout
        width = hidden_size * self.directions
        self.in_proj = nn.Linear(input_size, hidden_size) if self.residual else None
        sizes = ([hidden_size] * num_layers if self.residual
                 else [input_size] + [width] * (num_layers - 1))
        self.layers = nn.ModuleList(MinLayer(family, s, hidden_size, bidirectional, form) for s in sizes)
        for index, layer in enumerate(self.layers):
            layer.label = f"layer {index}"
        self.convs = nn.ModuleList(CausalConv(s, conv) for s in sizes) if conv else None
        if self.residual:
            def make_norm() -> nn.Module:
                return nn.LayerNorm(hidden_size) if norm else nn.Identity()

            self.norms1 = nn.ModuleList(make_norm() for _ in sizes)
            self.outs = nn.ModuleList(nn.Linear(width, hidden_size) for _ in sizes)
            self.norms2 = nn.ModuleList(make_norm() for _ in sizes) if ffn_mult else None
            self.ffns = nn.ModuleList(
                nn.Sequential(nn.Linear(hidden_size, ffn_mult * hidden_size), nn.GELU(),
                              nn.Linear(ffn_mult * hidden_size, hidden_size)) for _ in sizes
            ) if ffn_mult else None
            self.final_norm = make_norm()
        self.features = hidden_size if self.residual else width
        # ``precision: auto`` picks bf16 on a native-bf16 CPU for residual blocks (their norms,
        # convolutions, projections and feed-forwards; the scan stays float32): a training step
        # measured 1.6-2.8x faster than fp32 (benchmarks/precision.py); a plain layer gained 0-15 %
        self.bf16_faster = self.residual

    def forward(self, x: torch.Tensor, state: Any = None, lengths: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, Any]:
        h = x.transpose(0, 1)  # (T, B, I)
        steps = h.shape[0]
        mask = None
        if lengths is not None:
            t = torch.arange(steps, device=h.device)
            mask = (t[:, None] < lengths.to(h.device)[None, :]).unsqueeze(-1)  # (T, B, 1)
            if bool(mask.all()):
                mask = None
        hidden, tails = (state, None) if not isinstance(state, tuple) else (state[0], state[1:])
        dirs = self.directions
        finals, new_tails = [], []
        if self.in_proj is not None:
            h = self.in_proj(h)
        for k, layer in enumerate(self.layers):
            h0 = None if hidden is None else hidden[k * dirs:(k + 1) * dirs]
            tail = None if tails is None else tails[k]
            if self.residual:
                y = self.norms1[k](h)
            else:
                y = dropout(h, self.dropout, self.training) if k and self.dropout else h
            if self.convs is not None:
                y, tail = self.convs[k](y, tail, lengths)
                new_tails.append(tail)
            y, h_n = layer(y, mask, h0)
            finals.append(h_n)
            if not self.residual:
                h = y
                continue
            h = h + dropout(self.outs[k](y.to(h.dtype)), self.dropout, self.training)
            if self.ffns is not None:
                h = h + dropout(self.ffns[k](self.norms2[k](h)), self.dropout, self.training)
        if self.residual:
            h = self.final_norm(h)
        h_n = torch.cat(finals)
        return h.transpose(0, 1), (h_n, *new_tails) if self.convs is not None else h_n
