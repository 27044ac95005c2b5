"""How training ends when it does not complete: a divergence (exit 3) or a requested stop.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from rnnlab.errors import RnnlabError


class Diverged(RnnlabError):
    """The loss or the gradient became non-finite (or exploded): status ``diverged``. The run
    directory (``where``) and what was kept are filled in when the run is closed."""

    def __init__(self, epoch: int, step: int, reason: str, hint: str) -> None:
        self.epoch, self.step = epoch, step
        super().__init__(None, f"training diverged at epoch {epoch}, step {step}: {reason}; {hint}")


class Interrupted(Exception):
    """Raised in the loop when a stop was requested (SIGINT/SIGTERM) after a step finished and
    the checkpoint was saved; re-raised by ``finish_run`` with ``run_dir`` and ``signum`` set."""

    def __init__(self) -> None:
        super().__init__("interrupted")
        self.run_dir: Optional[Path] = None
        self.signum: Optional[int] = None
        self.saved: Optional[str] = None  # where the checkpoint stands, in words
        self.note: Optional[str] = None  # without a run directory: what happened, in words
