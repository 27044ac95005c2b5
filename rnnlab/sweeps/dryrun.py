"""``rnnlab sweep FILE --dry-run``: the trials a sweep would run (id, run name, overrides, threads),
validated as for a real run; nothing is trained, started or written."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rnnlab.sweeps.results import read_records
from rnnlab.sweeps.runner import check_options, reopen
from rnnlab.sweeps.spec import Sweep, Trial, expand, show
from rnnlab.sweeps.sweepdir import SWEEP_FILE, Options, trial_threads
from rnnlab.sweeps.sweepfile import load_sweep
from rnnlab.training.runtime import available_cores


def dry_run(sweep_file: Optional[Path], resume: Optional[Path], options: Options) -> list[str]:
    """The lines ``--dry-run`` prints: one per trial (or the search space of an Optuna search)."""
    check_options(options)
    if resume is not None:
        _, sweep, trials = reopen(resume, sweep_file)
        if sweep.search is None:
            _, records = read_records(resume)
            done = {r.trial for r in records if r.status == "completed"}
            trials = [t for t in trials if t.id not in done]
    else:
        assert sweep_file is not None
        sweep = load_sweep(sweep_file)
        trials = expand(sweep)
    where = f"in {resume}" if resume is not None else "a new sweep directory"
    share = max(1, available_cores() // options.workers) if options.backend == "local" else None
    lines = [f"dry run: sweep {sweep.name}, {where}, backend {options.backend}, "
             f"{options.workers} worker(s); nothing is trained or written"]
    if sweep.search is not None:
        return lines + search_lines(sweep, resume)
    lines.append(f"{len(trials)} trial(s) to run:")
    lines += [trial_line(t, trial_threads(t, options, share)) for t in trials]
    return lines


def trial_line(trial: Trial, threads: Optional[int]) -> str:
    """``t001  lstm-16: model.name=lstm, model.hidden_size=16  (threads 2)``"""
    shown = "decided by the backend" if not threads else str(threads)
    return f"  {trial.id}  {trial.run_name()}: {trial.label()}  (threads {shown})"


def search_lines(sweep: Sweep, resume: Optional[Path]) -> list[str]:
    """An Optuna search asks for its trials as it runs: say how many and over which space."""
    search = sweep.search
    assert search is not None
    asked = ""
    if resume is not None and (resume / SWEEP_FILE).is_file():
        _, records = read_records(resume)
        asked = f", {len(records)} asked so far"
    lines = [f"optuna {search.sampler} study: {search.trials} trials{asked}, pruner {search.pruner}; "
             "the values are chosen as the trials end, over:"]
    for key, dist in search.params.items():
        lines.append(f"  {key}: {dist.kind} {', '.join(show(a) for a in dist.args)}")
    return lines
