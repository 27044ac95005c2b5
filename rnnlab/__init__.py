"""rnnlab: train and compare recurrent networks from YAML configs, from the command line or Python.

The Python API (``rnnlab.train``, ``rnnlab.load_run``, ``rnnlab.sweep``, ``rnnlab.runs``; see
``rnnlab.api``) and the plugin decorators (``rnnlab.register_task`` / ``register_model`` /
``register_optimizer`` / ``register_scheduler``; see ``rnnlab.plugin``) are imported on first use,
so ``import rnnlab`` and the command line start without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rnnlab.errors import ConfigError, DataError, RnnlabError, RunDirError

__version__ = "0.1.0"

_LAZY = {
    "train": "api", "load_run": "api", "sweep": "api", "experiment": "api", "Run": "api",
    "SweepResult": "api", "runs": "api",
    "register_task": "plugin", "register_model": "plugin", "register_optimizer": "plugin",
    "register_scheduler": "plugin", "load_plugins": "config.plugins",
    "Diverged": "training.stops", "Interrupted": "training.stops",
}

__all__ = ["ConfigError", "DataError", "Diverged", "Interrupted", "RnnlabError", "Run", "RunDirError",
           "SweepResult", "__version__", "experiment", "load_plugins", "load_run", "register_model",
           "register_optimizer", "register_scheduler", "register_task", "runs", "sweep", "train"]

if TYPE_CHECKING:
    from rnnlab.api import Run, SweepResult, experiment, load_run, sweep, train
    from rnnlab.config.plugins import load_plugins
    from rnnlab.plugin import register_model, register_optimizer, register_scheduler, register_task
    from rnnlab.training.stops import Diverged, Interrupted


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
