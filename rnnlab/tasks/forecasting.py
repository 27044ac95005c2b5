"""The forecasting base that ``sine`` and ``series`` share: windows over a series, and the three
ways a model produces the next ``horizon`` values.

Windows. ``window_index`` places every window whose targets lie in a split ``[start, stop)``; its
lookback lies in the split too, or (``context_start`` below ``start``) may read the observed rows
just before it, as the published long-horizon benchmarks do. Windows advance one row at a time and
none is dropped: ``batched`` walks all of them, the last short batch included.

Modes (``predict``)
- ``direct``: all H steps at once. Models with a native multi-step output (``segrnn``, ``linear``)
  return (B, H, C); the others (``rnn``/``lstm``/``gru``/``mlp``) are built as a one-output-per-window
  model of size H * C and their output is reshaped.
- ``rollout``: autoregressive; one step is predicted and fed back as the next input (``Model.forecast``).
- ``encoder_decoder``: ``seq2seq``'s encoder reads the lookback and its decoder unrolls H steps.

``WindowNorm`` is the RevIN-style option on the model side: each window's inputs are shifted by its
last value (or its mean) before the model and the forecast shifted back, so a level the training
rows never saw does not throw the model off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Literal, Optional, Sequence

import torch

if TYPE_CHECKING:
    from rnnlab.models.base import Model
    from rnnlab.tasks.base import TaskSpec

Mode = Literal["direct", "rollout", "encoder_decoder"]


def window_index(start: int, stop: int, lookback: int, horizon: int,
                 context_start: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices (x (N, lookback), y (N, horizon)) of every window whose targets lie in
    ``[start, stop)``. Inputs start at ``context_start`` at the earliest (default: ``start``, so the
    whole window lies in the split)."""
    first = start if context_start is None else max(0, min(start, context_start))
    first_target = max(first + lookback, start)
    n = stop - horizon + 1 - first_target
    if n <= 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty.view(0, lookback), empty.view(0, horizon)
    targets = torch.arange(first_target, first_target + n)
    x_idx = targets.unsqueeze(1) + torch.arange(-lookback, 0).unsqueeze(0)
    y_idx = targets.unsqueeze(1) + torch.arange(horizon).unsqueeze(0)
    return x_idx, y_idx


def windows_in(start: int, stop: int, lookback: int, horizon: int,
               context_start: Optional[int] = None) -> int:
    """How many windows ``window_index`` places (without building them)."""
    first = start if context_start is None else max(0, min(start, context_start))
    return max(0, stop - horizon + 1 - max(first + lookback, start))


def batched(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices covering all ``n`` windows: the last batch may be short, never dropped."""
    for i in range(0, n, batch_size):
        yield slice(i, min(i + batch_size, n))


class WindowNorm:
    """Per-window normalisation around a model: ``none``, ``last`` (subtract each channel's last
    lookback value) or ``mean`` (its lookback mean); ``targets`` are the input channels forecast."""

    def __init__(self, kind: str, targets: Optional[Sequence[int]] = None) -> None:
        self.kind = kind
        self.targets = list(targets) if targets is not None else None

    def reference(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        if self.kind == "last":
            return x[:, -1:, :]
        if self.kind == "mean":
            return x.mean(dim=1, keepdim=True)
        return None

    def apply(self, x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``run`` on the normalised windows, its forecast shifted back to the windows' level."""
        ref = self.reference(x)
        if ref is None:
            return run(x)
        out = run(x - ref)
        return out + (ref if self.targets is None else ref[:, :, self.targets])


def predict(model: "Model", x: torch.Tensor, spec: "TaskSpec", horizon: int,
            outputs: int) -> torch.Tensor:
    """Forecasts shaped (B, K, C): one-step (K=1), per-step (K=T) or multi-step (K=horizon)."""
    if spec.output == "horizon":  # rollout, encoder-decoder or a model's own multi-step output
        return model.forecast(x, horizon)
    out, _ = model(x)
    if spec.output == "last" and spec.horizon is not None:  # direct: H * C outputs per window
        return out.view(out.shape[0], spec.horizon, outputs)
    return out.unsqueeze(1) if out.dim() == 2 else out


def native_horizon(model_name: str) -> bool:
    """Whether a registered model family produces all horizon steps itself."""
    from rnnlab.registry import MODELS

    return bool(getattr(MODELS.get(model_name, "model.name"), "native_horizon", False))
