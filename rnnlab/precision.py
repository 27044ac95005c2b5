"""Mixed precision for the training step: autocast to bf16 or fp16, and for fp16 a gradient scaler.

Only the training forward pass runs under autocast. Parameters, optimizer state and gradients stay
fp32, and validation/test run in fp32, so ``rnnlab eval`` reproduces a run's metrics on any device.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Optional

import torch

from .errors import ConfigError

DTYPES: dict[str, Optional[torch.dtype]] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto``: bf16 where the CPU computes bfloat16 natively (there oneDNN's LSTM trains about
    1.8x faster), fp32 elsewhere, including CUDA, where cuDNN's RNNs may lack bf16 kernels."""
    if name != "auto":
        return name
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence getattr
    native = device.type == "cpu" and any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return "bf16" if native else "fp32"


def check_precision(name: str, device: torch.device, where: str = "train.precision") -> None:
    """Reject a precision the device cannot run, before anything is written."""
    name = resolve_precision(name, device)
    if name == "fp16" and device.type != "cuda":
        raise ConfigError(where, "fp16 needs a CUDA device: PyTorch's CPU recurrent kernels (oneDNN) "
                          "have no fp16 path; use bf16 (CPU autocast) or fp32 on CPU")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(where, f"bf16 is not supported by {torch.cuda.get_device_name(device)}; "
                          "use fp16 or fp32")


class Precision:
    """The training step's precision policy: ``autocast()`` around the forward pass, then
    ``backward(loss)``, ``unscale_(optimizer)`` (so clipping sees true gradients) and ``step``."""

    def __init__(self, name: str, device: torch.device) -> None:
        self.name = name = resolve_precision(name, device)
        self.dtype = DTYPES[name]
        self.device_type = device.type
        # fp16 has 5 exponent bits: small gradients underflow unless the loss is scaled up first
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    def autocast(self) -> ContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step; with a scaler it is skipped when a gradient overflowed (and the
        scale lowered), which is fp16's normal operation, not divergence."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def taken(self, norms: torch.Tensor) -> torch.Tensor:
        """The pre-clip norms of the steps actually taken: with a scaler, overflowed (skipped)
        steps are left out; if every step overflowed the result is NaN, reported as divergence."""
        if self.scaler is None:
            return norms
        finite = norms[norms.isfinite()]
        if len(finite):
            return finite
        return torch.full((1,), float("nan"), dtype=norms.dtype, device=norms.device)

    def state_dict(self) -> Optional[dict[str, Any]]:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: Optional[dict[str, Any]]) -> None:
        if self.scaler is not None and state is not None:
            self.scaler.load_state_dict(state)
