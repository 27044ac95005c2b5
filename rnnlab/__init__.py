"""rnnlab: train and compare recurrent networks from YAML configs, from the command line or Python.

The Python API (``rnnlab.train``, ``rnnlab.load_run``, ``rnnlab.sweep``, ``rnnlab.runs``; see
``rnnlab.api``) and the plugin decorators (``rnnlab.register_task`` / ``register_model`` /
``register_optimizer`` / ``register_scheduler``; see ``rnnlab.plugins``) are imported on first use,
so ``import rnnlab`` and the command line start without loading torch.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError, RnnlabError, RunDirError

__version__ = "0.1.0"

_LAZY = {
    "train": "api", "load_run": "api", "sweep": "api", "experiment": "api", "Run": "api",
    "SweepResult": "api",
    "register_task": "plugins", "register_model": "plugins", "register_optimizer": "plugins",
    "register_scheduler": "plugins", "load_plugins": "plugins",
    "Diverged": "outcomes", "Interrupted": "outcomes",
}

__all__ = ["ConfigError", "DataError", "Diverged", "Interrupted", "RnnlabError", "Run", "RunDirError",
           "SweepResult", "__version__", "experiment", "load_plugins", "load_run", "register_model",
           "register_optimizer", "register_scheduler", "register_task", "runs", "sweep", "train"]

if TYPE_CHECKING:
    from .api import Run, SweepResult, experiment, load_run, sweep, train
    from .outcomes import Diverged, Interrupted
    from .plugins import load_plugins, register_model, register_optimizer, register_scheduler, register_task


class RunsModule(types.ModuleType):
    """The class of the submodule ``rnnlab.runs`` (run directory files), which makes it callable:
    ``rnnlab.runs("runs")`` is ``rnnlab.api.runs("runs")``, the API's run listing. (A package
    attribute cannot be both a submodule and a function; a callable module is both.)"""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module(".api", __name__).runs(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "runs":  # the submodule rnnlab.runs, callable: rnnlab.runs(dir) lists runs (api.runs)
        return importlib.import_module(".runs", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
