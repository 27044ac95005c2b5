"""``rnnlab train``'s entry (the command line's and ``rnnlab.train``'s): one process, or data-parallel
under torchrun. The distributed code is imported only in the second case."""

from __future__ import annotations

from pathlib import Path

from rnnlab.common.console import Reporter
from rnnlab.config.loading import Experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.training.runtime import launched


def run_training(exp: Experiment, runs_dir: Path, reporter: Reporter) -> Path:
    """Train ``exp`` into a new run directory in ``runs_dir``; the run directory."""
    if launched():
        from rnnlab.execution.distributed import train_run as train_data_parallel

        return train_data_parallel(exp, runs_dir, reporter)
    return train_run(exp, runs_dir, reporter)
