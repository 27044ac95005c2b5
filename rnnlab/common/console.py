"""What the user sees while a run trains: a rich progress bar and tables on a terminal, plain
periodic lines otherwise (logs, CI, cluster jobs), and almost nothing with ``--quiet``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def shown(key: str) -> bool:
    """Validation metrics for the one-line epoch summary; counts and per-group details
    (``val_accuracy/3``) stay in metrics.jsonl."""
    return key.startswith("val_") and key != "val_targets" and "/" not in key


class Reporter:
    """Plain lines (not a terminal) or nothing (quiet). ``RichReporter`` adds the live bar."""

    def __init__(self, quiet: bool = False, log_every: int = 50, stream: Any = None) -> None:
        self.quiet = quiet
        self.log_every = log_every
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.epochs = self.steps = self.epoch = 0

    def print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    # hooks the trainer calls ----------------------------------------------------------
    def run_start(self, run_dir: Path, summary: dict[str, Any]) -> None:
        if not self.quiet:
            self.print(f"run {run_dir}  task={summary['task']} model={summary['model']} "
                       f"params={summary['parameters']:,} device={summary['device']} "
                       f"threads={summary['threads']}")

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self._t0 = time.perf_counter()

    def wants_step(self, step: int) -> bool:
        return not self.quiet and step % self.log_every == 0

    def step(self, step: int, loss: float, seconds: float) -> None:
        self.print(f"epoch {self.epoch}/{self.epochs} step {step}/{self.steps} loss {loss:.4g} "
                   f"{step / max(seconds, 1e-9):.1f} it/s")

    def epoch_end(self, row: dict[str, Any], metric: str) -> None:
        if self.quiet:
            return
        vals = " ".join(f"{k}={fmt(v)}" for k, v in row.items() if shown(k))
        self.print(f"epoch {row['epoch']}/{self.epochs} train_loss={fmt(row['train_loss'])} {vals} "
                   f"lr={row['lr']:.3g} grad_norm={fmt(row['grad_norm_mean'])} "
                   f"clipped={row['clip_frac']:.0%} {row['seconds']:.1f}s")

    def plots(self, paths: list[Path]) -> None:
        pass

    def run_end(self, run_dir: Path, summary: dict[str, Any]) -> None:
        test = " ".join(f"{k}={fmt(v)}" for k, v in summary["test"].items())
        self.print(f"test {test}")
        if not self.quiet:
            self.print(f"best epoch {summary['best_epoch']}, {summary['train_seconds']:.1f}s training")

    def close(self) -> None:
        pass


class Silent(Reporter):
    """Prints nothing at all (the Python API's ``quiet=True``)."""

    def __init__(self) -> None:
        super().__init__(quiet=True)

    def print(self, text: str = "") -> None:
        pass


class RichReporter(Reporter):
    """A live progress bar (epoch, step, loss, it/s) and a final table, for terminals."""

    def __init__(self, log_every: int = 50, stream: Any = None) -> None:
        super().__init__(False, log_every, stream)
        self.progress: Optional[Progress] = None
        self.task_id: Any = None

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        super().epoch_start(epoch, epochs, steps)
        if self.progress is None:
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} it/s"),
                TimeRemainingColumn(), console=self.console, transient=True)
            self.progress.start()
            self.task_id = self.progress.add_task("train", total=steps, epoch="", loss="-", rate="-")
        # reset, not update(completed=0): a new epoch restarts the task's clock and speed samples,
        # without which the ETA reads 0:00:00 from the second epoch on
        self.progress.reset(self.task_id, total=steps, completed=0, epoch=f"{epoch}/{epochs}", loss="-",
                            rate="-")

    def wants_step(self, step: int) -> bool:
        return step % 10 == 0 or step == self.steps

    def step(self, step: int, loss: float, seconds: float) -> None:
        assert self.progress is not None
        self.progress.update(self.task_id, completed=step, loss=f"{loss:.4g}",
                             rate=f"{step / max(seconds, 1e-9):.1f}")

    def epoch_end(self, row: dict[str, Any], metric: str) -> None:
        vals = " ".join(f"{k}={fmt(v)}" for k, v in row.items() if shown(k))
        self.console.print(f"epoch {row['epoch']}/{self.epochs} train_loss={fmt(row['train_loss'])} "
                           f"{vals} lr={row['lr']:.3g} {row['seconds']:.1f}s")

    def run_end(self, run_dir: Path, summary: dict[str, Any]) -> None:
        self.close()
        table = Table(title=f"{summary['name']}: test metrics (best epoch {summary['best_epoch']})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in summary["test"].items():
            table.add_row(key, fmt(value))
        table.add_row("train seconds", f"{summary['train_seconds']:.1f}")
        self.console.print(table)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def make_reporter(quiet: bool, log_every: int) -> Reporter:
    if not quiet and sys.stdout.isatty():
        return RichReporter(log_every)
    return Reporter(quiet, log_every)
