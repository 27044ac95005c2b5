"""How training ends when it does not complete: a divergence (exit 3) or a requested stop.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from rnnlab.errors import RnnlabError


class Diverged(RnnlabError):
    """The loss or the gradient became non-finite (or exploded): status ``diverged``. ``where``:
    the run directory; ``saved``: where its last good checkpoint stands, in words (None: none yet)."""

    def __init__(self, epoch: int, step: int, reason: str, hint: str, where: Optional[Path] = None,
                 saved: Optional[str] = None) -> None:
        self.epoch, self.step = epoch, step
        kept = "" if where is None else (f"; kept the last good checkpoint ({saved})" if saved
                                         else "; no checkpoint had been saved yet")
        super().__init__(where, f"training diverged at epoch {epoch}, step {step}: {reason}; {hint}{kept}")


class Interrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM). The loop raises it bare after a step finished and the
    checkpoint was saved; the run's owner (``finish_run``) closes the run and raises it again with
    the run directory, the signal and where the checkpoint stands; ``note``: without a run
    directory, what happened, in words."""

    def __init__(self, run_dir: Optional[Path] = None, signum: Optional[int] = None,
                 saved: Optional[str] = None, note: Optional[str] = None) -> None:
        super().__init__("interrupted")
        self.run_dir, self.signum, self.saved, self.note = run_dir, signum, saved, note
