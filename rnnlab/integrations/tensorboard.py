"""TensorBoard logs for a run (``logging.tensorboard: true``), written with ``torch.utils.tensorboard``
into ``<run>/tensorboard`` (``tensorboard --logdir runs/``), with what Lightning's TensorBoardLogger
writes:

- per optimizer step: the training loss (``train/loss_step``) and the gradient norm before
  clipping (``grad/norm_step``), kept on the device and written in one go at the end of each epoch
  (and when the run closes) so the loop never waits on them;
- per epoch: every number of the epoch's ``metrics.jsonl`` row, grouped as ``train/``, ``val/``,
  ``lr``, ``grad/`` and ``speed/``;
- when the run closes: the test metrics (``test/<metric>``) and the best epoch's validation metrics
  (``best_val/<metric>``) as scalars, and the hyperparameters (the resolved config's options in
  effect, ``hparams.in_effect``) with those metrics in the HPARAMS tab, so the runs of a sweep (or
  any runs under one ``--logdir``) can be compared there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from rnnlab.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from rnnlab.config.loading import Experiment

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


def numbers(section: Any, prefix: str) -> dict[str, float]:
    """The finite numbers of a summary section (``test``, ``best_val``) as ``prefix/<name>``."""
    if not isinstance(section, dict):
        return {}
    return {f"{prefix}/{k}": float(v) for k, v in section.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def hparam_values(config: dict[str, Any]) -> dict[str, Any]:
    """The options in effect as TensorBoard hparams: numbers, booleans and text (anything else as
    JSON text; nulls left out, as TensorBoard has no null)."""
    from rnnlab.integrations.hparams import in_effect

    return {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
            for k, v in in_effect(config).items() if v is not None}


class TensorBoardLog:
    def __init__(self, log_dir: Path, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.config = config
        self.losses: list[tuple[int, "torch.Tensor"]] = []  # (optimizer step, loss) not yet written
        self.last_step = 0

    def step(self, step: int, loss: "torch.Tensor") -> None:
        """Optimizer step ``step``'s training loss (written with the epoch: no sync here)."""
        self.losses.append((step, loss.detach()))

    def write_steps(self) -> None:
        if not self.losses:
            return
        import torch

        values = torch.stack([loss.float() for _, loss in self.losses]).tolist()
        for (step, _), value in zip(self.losses, values):
            self.writer.add_scalar("train/loss_step", value, step)
        self.losses = []

    def epoch(self, row: dict[str, Any], step_norms: "torch.Tensor") -> None:
        """One epoch's row at its last optimizer step, and the norm of each of its steps."""
        step = self.last_step = int(row["step"])
        self.write_steps()
        for key, value in row.items():
            if key not in SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag(key), value, step)
        first = step - len(step_norms) + 1
        for i, norm in enumerate(step_norms.tolist()):
            self.writer.add_scalar("grad/norm_step", norm, first + i)
        self.writer.flush()

    def final(self, summary: dict[str, Any]) -> None:
        """The test and best validation metrics as scalars, and the hparams with them."""
        from torch.utils.tensorboard.summary import hparams

        metrics = {**numbers(summary.get("test"), "test"), **numbers(summary.get("best_val"), "best_val")}
        steps = summary.get("steps")
        step = steps if isinstance(steps, int) and not isinstance(steps, bool) else self.last_step
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        values = hparam_values(self.config)
        values["status"] = str(summary.get("status"))
        file_writer = self.writer._get_file_writer()  # the run's own event file, as Lightning does
        for part in hparams(values, metrics):
            file_writer.add_summary(part)

    def close(self, summary: Optional[dict[str, Any]] = None) -> None:
        """Write what is pending and, given the run's closing ``summary``, its final metrics."""
        self.write_steps()
        if summary is not None:
            self.final(summary)
        self.writer.close()


def open_tensorboard(exp: "Experiment", run_dir: Path) -> Optional[TensorBoardLog]:
    if not exp.config.logging.tensorboard:
        return None
    return TensorBoardLog(run_dir / TENSORBOARD, exp.to_dict())
