"""Mixed precision for the training step, chosen by what the hardware can do.

Only the training forward pass runs under autocast (bf16, or fp16 with a gradient scaler on CUDA).
Parameters, optimizer state and gradients stay fp32, and validation/test run in fp32, so
``rnnlab eval`` reproduces a run's metrics on any device.

CPUs differ: with AVX512-BF16 or AMX, oneDNN computes bfloat16 natively (there its LSTM trains
about 1.8x faster than in fp32); with AVX2 only it has no bf16 LSTM primitive at all ("could not
create a primitive descriptor for the LSTM forward propagation primitive"). So:

- ``cpu_features()`` reads the ISA from the CPU, and ``onednn_isa_cap()`` the oneDNN cap
  (``ONEDNN_MAX_CPU_ISA``), which tests use to exercise the AVX2 path on any CPU;
- ``probe_bf16(model)`` runs each distinct recurrent kernel of the model once, forward and
  backward, on a two-step batch under autocast, so a kernel that cannot run fails here with one
  line instead of mid-run with a oneDNN traceback;
- ``auto`` picks bf16 only where it is native *and* was measured faster (``benchmarks/precision.py``):
  for models with an ``nn.LSTM``; fp32 elsewhere, including CUDA.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from typing import Any, ContextManager, Optional

import torch
from torch import nn

from rnnlab.errors import ConfigError

DTYPES: dict[str, Optional[torch.dtype]] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

# the ISA flags (as /proc/cpuinfo names them) that decide CPU speed and bf16 support
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")
# ONEDNN_MAX_CPU_ISA values below AVX512_CORE_BF16: oneDNN then computes no bf16 natively
_ONEDNN_NO_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
# kernels for which bf16 autocast was measured faster than fp32 on a native-bf16 CPU
# (benchmarks/precision.py); nn.GRU and nn.RNN run in fp32 under CPU autocast anyway
BF16_FASTER = (nn.LSTM,)


@functools.lru_cache(maxsize=1)
def cpu_features() -> tuple[str, ...]:
    """The ISA flags of ``ISA_FLAGS`` this CPU reports (Linux ``/proc/cpuinfo``; elsewhere what
    torch's own probes say)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(f for f in ISA_FLAGS if f in flags)
    except OSError:
        pass
    probes = {"avx2": "_is_avx2_supported", "avx512f": "_is_avx512_supported",
              "avx512_bf16": "_is_avx512_bf16_supported", "amx_tile": "_is_amx_tile_supported"}
    return tuple(f for f, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)())


def onednn_isa_cap() -> Optional[str]:
    """``ONEDNN_MAX_CPU_ISA`` (or its older name ``DNNL_MAX_CPU_ISA``) when set."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return value.strip().upper() if value and value.strip() else None


def native_bf16() -> bool:
    """Whether oneDNN computes bfloat16 natively here: the CPU has AVX512-BF16 or AMX-BF16 and no
    ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below them."""
    features = cpu_features()
    if not any(f in features for f in NATIVE_BF16):
        return False
    return onednn_isa_cap() not in _ONEDNN_NO_BF16


def isa_summary() -> dict[str, Any]:
    """What a run's summary records about the CPU's instruction set."""
    out: dict[str, Any] = {"isa": list(cpu_features()), "native_bf16": native_bf16()}
    cap = onednn_isa_cap()
    if cap:
        out["onednn_max_cpu_isa"] = cap
    return out


def _missing_feature() -> str:
    """Why bfloat16 is not native here, as the end of a sentence."""
    cap = onednn_isa_cap()
    if any(f in cpu_features() for f in NATIVE_BF16) and cap in _ONEDNN_NO_BF16:
        return f"which ONEDNN_MAX_CPU_ISA={cap} caps oneDNN below"
    features = cpu_features()
    have = "AVX-512 without BF16" if "avx512f" in features else ("AVX2 only" if "avx2" in features
                                                                 else "neither AVX2 nor AVX-512")
    return f"which this CPU lacks (it has {have})"


def _kernel_key(module: nn.RNNBase) -> tuple[Any, ...]:
    return (type(module).__name__, module.mode, module.input_size, module.hidden_size, module.num_layers,
            module.bias, module.batch_first, module.bidirectional, getattr(module, "proj_size", 0))


def _recurrent_kernels(model: nn.Module) -> list[nn.RNNBase]:
    seen: dict[tuple[Any, ...], nn.RNNBase] = {}
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            seen.setdefault(_kernel_key(module), module)
    return list(seen.values())


_PROBES: dict[tuple[Any, ...], Optional[str]] = {}  # kernel shape -> probe result


def _probe_kernel(kernel: nn.RNNBase) -> Optional[str]:
    """Run a copy of one recurrent kernel under CPU bf16 autocast, forward and backward, on a
    two-step batch; the first line of the error it raised, or None. Cached per kernel shape."""
    key = _kernel_key(kernel)
    if key not in _PROBES:
        probe = copy.deepcopy(kernel).train()
        probe.dropout = 0.0  # draws no random numbers: the run's RNG streams stay untouched
        x = torch.randn(2, 2, probe.input_size, generator=torch.Generator().manual_seed(0))
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, _ = probe(x)
            out.float().sum().backward()
            _PROBES[key] = None
        except RuntimeError as exc:
            _PROBES[key] = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return _PROBES[key]


def probe_bf16(model: nn.Module) -> Optional[str]:
    """Why the model's recurrent kernels cannot train under CPU bf16 autocast, or None when they
    can (each distinct kernel shape runs once, forward and backward, on a tiny batch)."""
    for kernel in _recurrent_kernels(model):
        error = _probe_kernel(kernel)
        if error is not None:
            return f"{type(kernel).__name__}: {error[:160]}"
    return None


def resolve_precision(name: str, device: torch.device, model: Optional[nn.Module] = None) -> str:
    """The precision a run trains in. ``auto``: bf16 on a CPU that computes bfloat16 natively,
    for a model with a kernel measured faster in bf16 (``BF16_FASTER``, or a module whose class or
    instance sets ``bf16_faster = True``: s4d's stack, residual minGRU/minLSTM blocks) that passes
    the probe;
    fp32 elsewhere, including CUDA (cuDNN's RNNs may lack bf16 kernels). Without ``model`` the
    choice is made on the hardware alone."""
    if name != "auto":
        return name
    if device.type != "cpu" or not native_bf16():
        return "fp32"
    if model is None:
        return "bf16"
    if not any(isinstance(m, BF16_FASTER) or getattr(m, "bf16_faster", False) for m in model.modules()):
        return "fp32"
    return "bf16" if probe_bf16(model) is None else "fp32"


def check_precision(name: str, device: torch.device, model: Optional[nn.Module] = None,
                    where: str = "train.precision") -> str:
    """Reject a precision the device (and, given, the model's kernels) cannot run, before anything
    is written; the resolved precision otherwise."""
    resolved = resolve_precision(name, device, model)
    if resolved == "fp16" and device.type != "cuda":
        raise ConfigError(where, "fp16 needs a CUDA device: PyTorch's CPU recurrent kernels (oneDNN) "
                          "have no fp16 path; use bf16 (CPU autocast) or fp32 on CPU")
    if resolved == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(where, f"bf16 is not supported by {torch.cuda.get_device_name(device)}; "
                          "use fp16 or fp32")
    if resolved == "bf16" and device.type == "cpu":
        if not native_bf16():
            raise ConfigError(where, f"bf16 needs native bfloat16 (AVX512-BF16 or AMX-BF16), "
                              f"{_missing_feature()}; use 'auto' (bf16 only where native and faster) "
                              "or 'fp32'")
        failure = probe_bf16(model) if model is not None else None
        if failure is not None:
            raise ConfigError(where, f"bf16 cannot run this model's kernels here ({failure}); use "
                              "'auto' or 'fp32'")
    return resolved


class Precision:
    """The training step's precision policy: ``autocast()`` around the forward pass, then
    ``backward(loss)``, ``unscale_(optimizer)`` (so clipping sees true gradients) and ``step``.
    ``name`` is a resolved precision (see ``resolve_precision``)."""

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
