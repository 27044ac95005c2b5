"""Optuna searches in the sweep driver (``tpe:`` or ``cmaes:`` in a sweep file; extra
``rnnlab[optuna]``).

Ask and tell: when a worker slot frees, the study is asked for a trial; its values become a normal
trial (``trials/<id>.yaml``, one ``rnnlab train`` process, trial ``t001`` is Optuna's trial 0). While
it trains, each new epoch's validation metric in its ``metrics.jsonl`` is reported to Optuna; when
the pruner says so, the trial is stopped the way the sweep stops any trial (SIGINT locally, a
cancelled task on Ray: it saves its checkpoint and closes its run as ``interrupted``) and recorded
``pruned``. A finished trial's value (the ranking metric at its best epoch) is told; a failed or
diverged one is told as failed.

The study lives in the sweep directory, ``optuna.journal`` (Optuna's journal file storage), so
``rnnlab sweep --resume DIR`` continues the same study: trials the study still has running (the
sweep was stopped or killed under them) continue from their own run's checkpoint
(``rnnlab train --resume``), or start again with the same values where no checkpoint was written,
and new trials get the next numbers. No trial is lost or run twice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from rnnlab.common.safeio import dump_yaml
from rnnlab.errors import ConfigError, RnnlabError
from rnnlab.rundir import files as runs
from rnnlab.sweeps.backends import train_args, trial_args
from rnnlab.sweeps.driver import Driver, Running, sigterm_as_interrupt
from rnnlab.sweeps.optuna_study import STUDY_FILE, decode, distributions, open_study
from rnnlab.sweeps.results import TrialRecord, read_records
from rnnlab.sweeps.spec import Sweep, Trial, resolve_trial
from rnnlab.sweeps.sweepdir import (
    LOGS,
    SWEEP_FILE,
    TRIALS,
    Options,
    Outcome,
    run_summary,
    set_threads,
    trial_run,
    write_new,
    write_trial,
)


@dataclass
class Watch:
    """What the driver follows of one running trial."""

    number: int  # Optuna's trial number
    trial: Any  # the optuna.Trial to report to
    run_name: str
    run: Optional[Path] = None  # its run directory, once it exists
    reported: int = 0  # last epoch reported
    pruned_at: Optional[int] = None
    decided: Optional[float] = None  # time.monotonic() of the pruning decision


def drive(sweep: Sweep, sweep_dir: Path, resumed: bool, backend: Any, options: Options,
          say: Callable[[str], None]) -> Outcome:
    """``rnnlab sweep`` for a tpe/cmaes sweep, in its locked directory."""
    study = open_study(sweep, sweep_dir)
    if resumed:
        before, records = read_records(sweep_dir)
        runs.write_text(sweep_dir / SWEEP_FILE, dump_yaml(sweep.to_dict()))
    else:
        write_new(sweep_dir, sweep, [], options)
        before, records = {}, []
    driver = SearchDriver(sweep, records, sweep_dir, backend, options, say, study)
    if before:
        driver.meta.update(started=before.get("started"),
                           resumed=[*before.get("resumed", []), driver.meta["started"]])
    return driver.run()


class SearchDriver(Driver):
    def __init__(self, sweep: Sweep, records: list[TrialRecord], sweep_dir: Path, backend: Any,
                 options: Options, say: Callable[[str], None], study: Any) -> None:
        super().__init__(sweep, [], [], sweep_dir, backend, options, say)
        assert sweep.search is not None
        self.search, self.study = sweep.search, study
        self.ranking.metric, self.ranking.mode = sweep.metric, sweep.mode
        self.width = max(3, len(str(self.search.trials)))
        self.dists = distributions(sweep)
        self.watch: dict[Any, Watch] = {}
        self.ending: Optional[Watch] = None
        # trials to run before asking for new ones: (trial, record, number, run to resume or None)
        self.again: list[tuple[Trial, TrialRecord, int, Optional[Path]]] = []
        self.reconcile({r.trial: r for r in records})
        self.meta["optuna"] = {"sampler": self.search.sampler, "pruner": self.search.pruner,
                               "trials": self.search.trials, "study": STUDY_FILE}

    def settled(self, record: TrialRecord) -> bool:
        return record.status in ("completed", "pruned")

    # ------------------------------------------------------------------ resuming
    def reconcile(self, known: dict[str, TrialRecord]) -> None:
        """Records for every trial the study holds; the ones it still has running are queued to
        continue (from their run's checkpoint) or to start again with the same values."""
        from optuna.trial import TrialState

        for frozen in sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number):
            values = decode(self.sweep, frozen.params)
            trial = Trial(frozen.number + 1, values, {}, self.width)
            record = known.get(trial.id) or TrialRecord(trial.id, values)
            self.trials.append(trial)
            self.records.append(record)
            run = trial_run(self.sweep_dir, trial.run_name(record.attempts)) if record.attempts else None
            summary = run_summary(run)
            if frozen.state != TrialState.RUNNING:  # told: the study's word is final
                if frozen.state == TrialState.COMPLETE and record.status != "completed":
                    if summary.get("status") == "completed":
                        record.adopt(summary)
                    record.status = "completed"
                    record.val = record.val or {str(self.ranking.metric): frozen.value}
                elif frozen.state == TrialState.PRUNED:
                    record.status = "pruned"
                elif frozen.state == TrialState.FAIL and record.status not in ("failed", "diverged"):
                    record.status = "failed"
                continue
            status = summary.get("status")
            try:
                trial = resolve_trial(self.sweep, trial.index, values, self.width)
            except ConfigError as exc:  # the base config changed under the sweep: cannot rerun
                record.status, record.error = "failed", exc.line()
                self.study.tell(frozen.number, state=TrialState.FAIL)
                continue
            self.trials[-1] = trial
            if status == "completed":  # finished after the sweep last saw it
                record.adopt(summary)
                record.run = str(run.resolve()) if run is not None else None
                self.tell(frozen.number, record)
            elif run is not None and (run / runs.CHECKPOINTS / "last.pt").is_file() and status != "diverged":
                self.again.append((trial, record, frozen.number, run))
            else:
                self.again.append((trial, record, frozen.number, None))
        self.done = sum(r.status == "completed" for r in self.records)

    # ------------------------------------------------------------------ the loop
    def run(self) -> Outcome:
        asked = len(self.records)
        for _, record, _, _ in self.again:
            record.status = "pending"
        todo = len(self.again) + max(0, self.search.trials - asked)
        self.backend.stop_file = self.sweep_dir / ".stop"
        self.backend.stop_file.unlink(missing_ok=True)
        self.say(f"sweep {self.sweep_dir}: optuna {self.search.sampler} study, {asked} of "
                 f"{self.search.trials} trials asked, {todo} to run ({len(self.again)} to continue), "
                 f"pruner {self.search.pruner}")
        self.describe([resolve_trial(self.sweep, 0, {})] if self.search.trials > asked else
                      [t for t, _, _, _ in self.again])
        self.save()
        return self.guarded()

    def guarded(self) -> Outcome:
        interrupted = False
        with sigterm_as_interrupt():
            try:
                self.loop([])
            except KeyboardInterrupt:
                interrupted = True
                self.say("interrupted: stopping the running trials (Ctrl-C again to kill them)")
                self.stop()
            except BaseException:
                self.stop()
                self.finish(interrupted=True)
                raise
        return self.finish(interrupted)

    def loop(self, todo: list[tuple[Trial, TrialRecord]]) -> None:
        while True:
            while len(self.running) < self.options.workers and (
                    self.again or len(self.records) < self.search.trials):
                self.launch()
            if not self.running:
                return
            self.poll()
            for handle, code, error in self.backend.wait(list(self.running), timeout=0.5):
                self.ranking.check(self.end(handle, code, error, stopped=False))

    def launch(self) -> None:
        if self.again:
            trial, record, number, run = self.again.pop(0)
            self.begin(trial, record, number, run)
            return
        asked = self.study.ask(self.dists)
        values = decode(self.sweep, asked.params)
        try:
            trial = resolve_trial(self.sweep, asked.number + 1, values, self.width)
        except ConfigError as exc:  # e.g. a value the model rejects: a failed trial, told as such
            from optuna.trial import TrialState

            trial = Trial(asked.number + 1, values, {}, self.width)
            record = TrialRecord(trial.id, values, status="failed", error=exc.line())
            self.trials.append(trial)
            self.records.append(record)
            self.study.tell(asked, state=TrialState.FAIL)
            self.say(f"{trial.id} failed: {exc.line()}")
            self.save()
            return
        record = TrialRecord(trial.id, values)
        self.trials.append(trial)
        self.records.append(record)
        self.begin(trial, record, asked.number, None, asked)

    def begin(self, trial: Trial, record: TrialRecord, number: int, resume: Optional[Path],
              asked: Any = None) -> None:
        """Start a trial's process: a fresh run, or ``rnnlab train --resume`` of its run."""
        import optuna

        threads = self.threads(trial)
        set_threads(trial, threads)
        write_trial(self.sweep_dir, trial)  # with the threads it runs with now
        if resume is None:
            record.attempts += 1
            name = trial.run_name(record.attempts)
            args = train_args(self.sweep_dir / TRIALS / f"{trial.id}.yaml", self.sweep_dir, name)
        else:
            name = trial.run_name(record.attempts)
            args = trial_args(self.sweep_dir, name,
                              ["--resume", str(resume), "--set", f"train.threads={threads}"])
        optuna_trial = asked
        if optuna_trial is None:
            frozen = self.study.get_trials(deepcopy=False)[number]
            optuna_trial = optuna.trial.Trial(self.study, frozen._trial_id)
            reported = max(frozen.intermediate_values, default=0)
        else:
            reported = 0
        log = self.sweep_dir / LOGS / f"{name}.log"
        handle = self.backend.start(args, log, threads)
        self.running[handle] = Running(record, trial, name, log, time.monotonic())
        self.watch[handle] = Watch(number, optuna_trial, name, resume, reported)
        record.status, record.error, record.run = "running", None, None
        self.say(f"{trial.id} {'continued' if resume else 'started'}: {trial.label()}")
        self.save()

    def poll(self) -> None:
        """Report each running trial's new epochs; stop the ones the pruner gives up on."""
        for handle, w in list(self.watch.items()):
            for epoch, value in self.report_new_epochs(w):
                if w.pruned_at is None and w.trial.should_prune():
                    w.pruned_at, w.decided = epoch, time.monotonic()
                    self.say(f"{self.running[handle].trial.id} pruned after epoch {epoch} "
                             f"({self.ranking.split} {self.ranking.metric} {value:.4g}, "
                             f"{self.search.pruner} pruner): stopping it")
                    stop_one(self.backend, handle)

    def report_new_epochs(self, w: Watch) -> Iterator[tuple[int, float]]:
        """Report to the study each epoch of the trial's run not reported yet, yielding each."""
        metric = f"val_{self.ranking.metric}"
        if w.run is None:
            w.run = trial_run(self.sweep_dir, w.run_name)
            if w.run is None:
                return
        try:
            rows = runs.read_jsonl(w.run / runs.METRICS)
        except (OSError, RnnlabError):
            return
        for row in rows:
            epoch, value = row.get("epoch"), row.get(metric)
            if not isinstance(epoch, int) or epoch <= w.reported or not isinstance(value, (int, float)):
                continue
            w.reported = epoch
            if math.isfinite(value):
                w.trial.report(float(value), epoch)
                yield epoch, float(value)

    def end(self, handle: Any, code: Optional[int], error: Optional[str], stopped: bool) -> TrialRecord:
        self.ending = self.watch.pop(handle)
        # epochs written since the last poll (a short trial may end between two): without them the
        # median pruner would compare later trials against fewer trials at those epochs
        for _ in self.report_new_epochs(self.ending):
            pass
        try:
            record = super().end(handle, code, error, stopped)
        finally:
            watch, self.ending = self.ending, None
        self.tell(watch.number, record)
        self.save()
        return record

    def report(self, job: Running, record: TrialRecord) -> None:
        w = self.ending
        if w is not None and w.pruned_at is not None and record.status == "interrupted":
            record.status = "pruned"
            record.error = f"pruned after epoch {w.pruned_at} ({self.search.pruner})"
            if w.decided is not None:  # how fast the backend stopped it
                record.error += f", stopped {time.monotonic() - w.decided:.1f}s after the decision"
        super().report(job, record)

    def tell(self, number: int, record: TrialRecord) -> None:
        """Tell the study how the trial ended; one stopped with the sweep stays running in the
        study (continued by --resume)."""
        from optuna.trial import TrialState

        if record.status == "interrupted":
            return
        if record.status == "completed":
            metrics = record.val if self.ranking.split == "val" else record.test
            value = metrics.get(self.ranking.metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.study.tell(number, float(value), skip_if_finished=True)
                return
        state = TrialState.PRUNED if record.status == "pruned" else TrialState.FAIL
        self.study.tell(number, state=state, skip_if_finished=True)

    def finish(self, interrupted: bool) -> Outcome:
        outcome = super().finish(interrupted)
        from rnnlab.sweeps.optuna_plots import write_study_plots

        write_study_plots(self.study, self.sweep_dir / runs.PLOTS, self.say)
        return outcome


def stop_one(backend: Any, handle: Any) -> None:
    """Stop one trial gracefully (its checkpoint is saved and its run closed ``interrupted``):
    SIGINT locally, a cancelled task on Ray, the trial's own stop file under submitit. (A Ray
    backend's ``interrupt`` stops every trial: a shared stop file.)"""
    getattr(backend, "stop_one", backend.interrupt)(handle)
