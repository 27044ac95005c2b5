"""Where a run executes and how it is made reproducible: the device, CPU threads, seeds, RNG
state and the environment a run records.
"""
from __future__ import annotations

import os
import platform
import random
from typing import Any, Optional

import numpy as np
import torch

from rnnlab import __version__
from rnnlab.config.loading import Experiment
from rnnlab.errors import ConfigError
from rnnlab.training.limits import check_threads
from rnnlab.training.precision import isa_summary

DEVICES = ("cpu", "cuda", "auto")  # what train.device, every --device and the API's device= take


def check_device(name: Any, where: str = "--device") -> str:
    """``name`` when it is one of ``DEVICES``, else one ConfigError naming ``where``."""
    if not isinstance(name, str) or name not in DEVICES:
        raise ConfigError(where, f"must be cpu, cuda or auto, got {name!r}")
    return name


def resolve_device(name: str, where: str = "train.device") -> torch.device:
    check_device(name, where)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(where, "'cuda' requested but no CUDA device is available "
                          "(use 'auto' or 'cpu')")
    return torch.device(name)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def set_threads(threads: Optional[int], warn: bool = True) -> int:
    """Torch's CPU threads: ``threads``, capped (with a warning) to the cores available."""
    n = check_threads(threads, available_cores(), warn)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    env: dict[str, Any] = {
        "device": str(device),
        "cpu": cpu_model(),
        **isa_summary(),
        "threads": threads,
        "versions": {"rnnlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["versions"]["cuda"] = torch.version.cuda
        env["versions"]["cudnn"] = torch.backends.cudnn.version()
    return env


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG a run draws from, in types ``torch.load(weights_only=True)`` accepts."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "data": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def determinism(exp: Experiment, device: torch.device) -> dict[str, Any]:
    """The seeds and settings a run's reproducibility rests on, and what to expect from them."""
    if device.type == "cpu":
        expect = "bit-reproducible for this seed, thread count and torch build (resume included)"
    elif getattr(exp.model, "dropout", 0):
        expect = "not bit-reproducible: cuDNN RNN kernels with dropout are nondeterministic"
    else:
        expect = "close but not guaranteed bit-exact (cuDNN/cuBLAS may pick nondeterministic kernels)"
    return {
        "seed": exp.train.seed,
        "data_seed": getattr(exp.data, "seed", None),
        "expect": expect,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def launched() -> bool:
    """True in a process that torchrun started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1
