from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

SINE_TINY: dict[str, Any] = {
    "task": {"name": "sine", "mode": "window", "window": 4, "n_points": 300},
    "model": {"name": "lstm", "hidden_size": 8},
    "train": {"epochs": 3, "batch_size": 16, "lr": 0.01, "seed": 0, "threads": 1},
    "logging": {"plots": False},
}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(autouse=True)
def plugins_stay_in_their_test():
    """A plugin a test loads is registered for that test only: the registries, the plugin records
    and the imported plugin modules are as before once it ends (the process keeps running tests)."""
    import sys

    from rnnlab.config import plugins
    from rnnlab.models import MODELS
    from rnnlab.tasks import TASKS
    from rnnlab.training.optim import OPTIMIZERS, SCHEDULERS

    registries = (TASKS, MODELS, OPTIMIZERS, SCHEDULERS)
    saved = [dict(r._items) for r in registries]
    records = dict(plugins._records)
    yield
    for name in set(plugins._records) - set(records):
        sys.modules.pop(name, None)
    for registry, items in zip(registries, saved):
        registry._items = items
    plugins._records.clear()
    plugins._records.update(records)


@pytest.fixture
def write_config(tmp_path: Path):
    """write_config(extra=None, base=SINE_TINY, name="tiny") -> path of a YAML config."""

    def write(extra: dict[str, Any] | None = None, base: dict[str, Any] | None = None,
              name: str = "tiny") -> Path:
        cfg = deep_merge(base if base is not None else SINE_TINY, extra or {})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    return write


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"
