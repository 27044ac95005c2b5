"""The driver of a grid or random sweep: runs the trials not yet completed N at a time on a backend,
records each as it ends (retrying as the sweep file says), stops cleanly on Ctrl-C/SIGTERM, ranks
and writes the summaries. Optuna searches drive trials with a subclass (``sweeps.optuna_search``).
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from rnnlab.common.invocation import read_result
from rnnlab.rundir import files as runs
from rnnlab.sweeps.backends import STOP_GRACE_S, result_file, train_args
from rnnlab.sweeps.results import FINISHED, Ranking, TrialRecord, ranked_table, write_plots, write_summaries
from rnnlab.sweeps.spec import Sweep, Trial
from rnnlab.sweeps.sweepdir import (
    LOGS,
    STOP,
    TRIALS,
    Options,
    Outcome,
    commands,
    exit_text,
    log_error,
    run_summary,
    set_threads,
    threads_source,
    trial_run,
    trial_threads,
    write_trial,
)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """``kill PID`` stops a sweep as cleanly as Ctrl-C does."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

@dataclass
class Running:
    record: TrialRecord
    trial: Trial
    run_name: str
    log: Path
    started: float

class Driver:
    def __init__(self, sweep: Sweep, trials: list[Trial], records: list[TrialRecord], sweep_dir: Path,
                 backend: Any, options: Options, say: Callable[[str], None]) -> None:
        self.sweep, self.trials, self.records = sweep, trials, records
        self.sweep_dir, self.backend, self.options, self.say = sweep_dir, backend, options, say
        self.ranking = Ranking.of(sweep)
        self.meta: dict[str, Any] = {
            "sweep": sweep.name, "id": sweep_dir.name, "status": "running", "backend": backend.name,
            "workers": options.workers, "threads_per_trial": threads_source(sweep, options, backend),
            "cores": backend.cores,
            **commands(sweep_dir, options), "started": runs.now_iso(), "finished": None,
        }
        self.running: dict[Any, Running] = {}
        self.done = sum(r.status == "completed" for r in records)

    def settled(self, record: TrialRecord) -> bool:
        """Whether a trial needs no rerun (hook: a search also counts pruned trials as settled)."""
        return record.status == "completed"

    def save(self) -> list[TrialRecord]:
        return write_summaries(self.sweep_dir, self.meta, self.records, self.sweep.keys, self.ranking)

    def run(self) -> Outcome:
        todo = [(t, r) for t, r in zip(self.trials, self.records) if r.status != "completed"]
        for _, record in todo:
            record.status = "pending"
        self.backend.stop_file = self.sweep_dir / STOP
        self.backend.stop_file.unlink(missing_ok=True)
        self.say(f"sweep {self.sweep_dir}: {len(todo)} of {len(self.trials)} trials to run")
        self.describe([t for t, _ in todo])
        self.save()
        interrupted = False
        with sigterm_as_interrupt():
            try:
                self.loop(todo)
            except KeyboardInterrupt:
                interrupted = True
                self.say("interrupted: stopping the running trials (Ctrl-C again to kill them)")
                self.stop()
            except BaseException:  # e.g. the ranking metric is not one the trials report
                self.stop()
                self.finish(interrupted=True)
                raise
        return self.finish(interrupted)

    def describe(self, trials: list[Trial]) -> None:
        """The line that says what the sweep runs: backend, workers, threads per trial."""
        self.say(f"backend {self.backend.name} ({self.backend.cores} cores), {self.options.workers} "
                 f"worker(s), threads per trial: {self.meta['threads_per_trial']}")
        most = max((self.threads(t) for t in trials), default=0)
        if self.options.workers * most > self.backend.cores:
            self.say(f"note: {self.options.workers} workers x {most} threads > {self.backend.cores} cores: "
                     "the cores are oversubscribed")

    def threads(self, trial: Trial) -> int:
        return trial_threads(trial, self.options, self.backend.threads)

    def loop(self, todo: list[tuple[Trial, TrialRecord]]) -> None:
        queue = list(reversed(todo))
        # a queueing backend (submitit) takes every trial at once and runs --workers at a time itself
        slots = len(queue) if getattr(self.backend, "queues", False) else self.options.workers
        while queue or self.running:
            while queue and len(self.running) < slots:
                self.start(*queue.pop())
            for handle, code, error in self.backend.wait(list(self.running), timeout=0.5):
                self.ranking.check(self.end(handle, code, error, stopped=False))

    def start(self, trial: Trial, record: TrialRecord) -> None:
        record.attempts += 1
        name = trial.run_name(record.attempts)
        log = self.sweep_dir / LOGS / f"{name}.log"
        threads = self.threads(trial)
        set_threads(trial, threads)
        write_trial(self.sweep_dir, trial)  # as it runs now (a resumed sweep may share cores anew)
        args = train_args(self.sweep_dir / TRIALS / f"{trial.id}.yaml", self.sweep_dir, name)
        handle = self.backend.start(args, log, threads)
        self.running[handle] = Running(record, trial, name, log, time.monotonic())
        record.status, record.error, record.run = "running", None, None
        self.say(f"{trial.id} {'queued' if getattr(self.backend, 'queues', False) else 'started'}: "
                 f"{trial.label()}")
        self.save()

    def end(self, handle: Any, code: Optional[int], error: Optional[str], stopped: bool) -> TrialRecord:
        job = self.running.pop(handle)
        record = job.record
        record.seconds = time.monotonic() - job.started
        result = read_result(result_file(self.sweep_dir, job.run_name))
        run = trial_run(self.sweep_dir, job.run_name)
        record.run = str(run.resolve()) if run is not None else None
        summary = run_summary(run)
        if summary.get("status") in FINISHED:
            record.adopt(summary)
        else:  # no run directory, or the process died before closing it
            record.status = "interrupted" if stopped else "failed"
            record.val, record.test = {}, {}
        if record.status == "completed":
            self.done += 1
        elif stopped and record.status == "interrupted":
            record.error = "stopped with the sweep"
        else:
            record.error = (record.error or result.get("error") or log_error(job.log)
                            or exit_text(code, error))
        self.report(job, record)
        self.save()
        return record

    def report(self, job: Running, record: TrialRecord) -> None:
        line = f"{job.trial.id} {record.status} in {record.seconds:.1f}s"
        if record.status == "completed":
            self.ranking.resolve([record])
            metrics = record.val if self.ranking.split == "val" else record.test
            value = metrics.get(self.ranking.metric)
            if value is not None:
                line += f": {self.ranking.label} {value:.4g}"
        elif record.error:
            line += f": {record.error}"
        self.say(f"[{self.done}/{len(self.records)} completed] {line}")

    def stop(self) -> None:
        """Interrupt every running trial, give each time to close its run, then kill the rest."""
        for handle in self.running:
            self.backend.interrupt(handle)
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            while self.running and time.monotonic() < deadline:
                for handle, code, error in self.backend.wait(list(self.running), timeout=0.5):
                    self.end(handle, code, error, stopped=True)
        except KeyboardInterrupt:
            pass
        for handle in list(self.running):
            self.backend.kill(handle)
            self.end(handle, None, "killed", stopped=True)

    def finish(self, interrupted: bool) -> Outcome:
        if interrupted:
            status = "interrupted"
        else:
            status = "completed" if all(self.settled(r) for r in self.records) else "incomplete"
        for record in self.records:
            if record.status == "running":  # interrupted between its end and its record
                record.status = "interrupted"
        self.meta.update(status=status, finished=runs.now_iso())
        ordered = self.save()
        write_plots(self.sweep, self.records, self.sweep_dir / runs.PLOTS, self.ranking)
        best = ordered[0] if ordered and ordered[0].rank == 1 else None
        mode = f" ({self.ranking.mode})" if self.ranking.mode else ""
        title = f"{self.sweep.name}: {len(self.records)} trials, ranked by {self.ranking.label}{mode}"
        table = ranked_table(ordered, self.sweep.keys, self.ranking, title)
        return Outcome(self.sweep_dir, status, ordered, table, best)
