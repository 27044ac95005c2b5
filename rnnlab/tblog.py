"""TensorBoard scalars for a run (``logging.tensorboard: true``), written with
``torch.utils.tensorboard`` into ``<run>/tensorboard`` (``tensorboard --logdir runs/``).

Per epoch: every number of the epoch's ``metrics.jsonl`` row, grouped as ``train/``, ``val/``,
``lr``, ``grad/`` and ``speed/``. Per optimizer step: the gradient norm before clipping
(``grad/norm_step``), written in one go at the end of the epoch so the loop never waits on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from .config import Experiment
from .errors import ConfigError

TENSORBOARD = "tensorboard"
GROUPS = {"train_loss": "train/loss", "lr": "lr", "grad_norm_mean": "grad/norm_mean",
          "grad_norm_max": "grad/norm_max", "clip_frac": "grad/clip_frac",
          "samples_per_s": "speed/samples_per_s", "tokens_per_s": "speed/tokens_per_s",
          "seconds": "speed/epoch_seconds"}
SKIP = {"epoch", "step", "steps", "train_seconds"}


def require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("logging.tensorboard", "needs the 'tensorboard' package: "
                          "pip install 'rnnlab[tensorboard]' (or set logging.tensorboard: false)") from None


def tag(key: str) -> str:
    if key in GROUPS:
        return GROUPS[key]
    if key.startswith("val_"):
        return "val/" + key[4:]
    return key


class TensorBoardLog:
    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def epoch(self, row: dict[str, Any], step_norms: torch.Tensor) -> None:
        """One epoch's row at its last optimizer step, and the norm of each of its steps."""
        step = int(row["step"])
        for key, value in row.items():
            if key not in SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag(key), value, step)
        first = step - len(step_norms) + 1
        for i, norm in enumerate(step_norms.tolist()):
            self.writer.add_scalar("grad/norm_step", norm, first + i)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(exp: Experiment, run_dir: Path) -> Optional[TensorBoardLog]:
    if not exp.config.logging.tensorboard:
        return None
    return TensorBoardLog(run_dir / TENSORBOARD)
