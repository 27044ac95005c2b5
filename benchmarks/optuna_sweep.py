"""Optuna in `rnnlab sweep` (issue 15): a TPE search with median pruning against random search,
and a TPE sweep killed midway and resumed.

1. The same base (configs/lstm_sine.yaml, fewer epochs), the same space (train.lr, model.hidden_size,
   model.num_layers), the same trial count and workers: `random:` vs `tpe: {pruner: median}`.
   Prints each sweep's best validation value, wall time, and how many trials were pruned. Done when
   the TPE sweep's best is at least as good and its wall time is shorter.
2. A TPE sweep is killed (SIGKILL: no clean-up by the sweep itself) after some trials settled, then
   `rnnlab sweep --resume DIR`; checks from the study file and the run directories that trial
   numbers continue, every trial ended once, none was lost and none ran twice.

    python benchmarks/optuna_sweep.py                    # both parts: 20 trials each, --workers 2
    python benchmarks/optuna_sweep.py --trials 8 --epochs 6 --skip-resume
    python benchmarks/optuna_sweep.py --rounds 0         # part 2 only

Trials are whole processes (Python + torch start-up included), so this measures what a user waits.
Wall times are only comparable on a quiet machine. Needs `pip install 'rnnlab[optuna]'`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "configs" / "lstm_sine.yaml"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
SPACE = {"train.lr": {"loguniform": [1.0e-3, 3.0e-2]}, "model.hidden_size": {"int": [8, 64]},
         "model.num_layers": {"int": [1, 3]}}


def sweep_file(folder: Path, kind: str, trials: int, epochs: int, seed: int) -> Path:
    section: dict[str, Any] = {"trials": trials, **SPACE}
    if kind == "tpe":
        section["pruner"] = "median"
    body: dict[str, Any] = {"name": f"bench_{kind}", kind: section, "seed": seed,
            "metric": "mse_clean", "mode": "min"}
    path = folder / f"{kind}.yaml"
    # early stopping off: pruning, not early stopping, is what is compared
    body["base"] = {**yaml.safe_load(BASE.read_text())}
    body["base"]["train"] = {**body["base"]["train"], "epochs": epochs, "early_stopping": None}
    body["base"]["logging"] = {"plots": False}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def rnnlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "rnnlab", *args]


def only_sweep_dir(runs: Path) -> Path:
    (found,) = [p for p in runs.iterdir() if p.is_dir()]
    return found


def summary(sweep: Path) -> dict[str, Any]:
    return json.loads((sweep / "summary.json").read_text())


def run_sweep(path: Path, runs: Path, workers: int) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    proc = subprocess.run(rnnlab("sweep", str(path), "--runs-dir", str(runs), "--workers", str(workers),
                                 "--quiet"), env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep {path} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds, summary(only_sweep_dir(runs))


def compare(args: argparse.Namespace, tmp: Path) -> bool:
    ok = True
    for round_ in range(args.rounds):
        results = {}
        for kind in ("random", "tpe"):
            path = sweep_file(tmp, kind, args.trials, args.epochs, args.seed)
            runs = tmp / f"runs_{kind}_{round_}"
            seconds, s = run_sweep(path, runs, args.workers)
            results[kind] = (seconds, s)
            print(f"round {round_ + 1} {kind:6s}: best val mse_clean {s['best']['score']:.5g} "
                  f"({s['best']['trial']}), wall {seconds:.1f} s, trials {s['counts']}", flush=True)
        (t_rand, s_rand), (t_tpe, s_tpe) = results["random"], results["tpe"]
        better = s_tpe["best"]["score"] <= s_rand["best"]["score"]
        faster = t_tpe < t_rand
        print(f"round {round_ + 1}: tpe best <= random best: {better}; tpe wall < random wall: {faster} "
              f"({t_tpe / t_rand:.2f}x)", flush=True)
        ok = ok and better and faster
    return ok


def mid_training(run: Path) -> bool:
    try:
        status = json.loads((run / "summary.json").read_text()).get("status")
    except (OSError, ValueError):
        return False
    return status == "running" and (run / "checkpoints" / "last.pt").is_file()


def resume_check(args: argparse.Namespace, tmp: Path) -> bool:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    trials = args.resume_trials
    path = sweep_file(tmp, "tpe", trials, args.epochs, args.seed)
    runs = tmp / "runs_resume"
    proc = subprocess.Popen(rnnlab("sweep", str(path), "--runs-dir", str(runs),
                                   "--workers", str(args.workers), "--quiet"),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settled, training = 0, False
    # kill once some trials settled and another is mid-training (it has a checkpoint to continue)
    while proc.poll() is None and (settled < args.kill_after or not training):
        time.sleep(0.5)
        try:
            sweep = only_sweep_dir(runs)
            counts = summary(sweep)["counts"]
        except (OSError, ValueError, KeyError):
            continue
        settled = counts.get("completed", 0) + counts.get("pruned", 0)
        training = any(mid_training(run) for run in sweep.iterdir())
    if proc.poll() is not None:
        print("resume: the sweep ended before it could be killed; raise --resume-trials")
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sweep = only_sweep_dir(runs)
    time.sleep(3)  # the trials get SIGINT from the kernel when the sweep dies, and checkpoint
    journal = JournalStorage(JournalFileBackend(str(sweep / "optuna.journal")))
    before = optuna.load_study(study_name="bench_tpe", storage=journal).get_trials()
    states = [t.state.name for t in before]
    print(f"killed after {settled} settled trials; the study had {len(before)}: {states}", flush=True)
    done = subprocess.run(rnnlab("sweep", "--resume", str(sweep), "--workers", str(args.workers)),
                          env=ENV, capture_output=True, text=True)
    print("\n".join(line for line in done.stdout.splitlines() if "continued" in line or "started" in line))
    journal = JournalStorage(JournalFileBackend(str(sweep / "optuna.journal")))
    after = optuna.load_study(study_name="bench_tpe", storage=journal).get_trials()
    numbers = [t.number for t in after]
    finished = all(t.state.name in ("COMPLETE", "PRUNED") for t in after)
    records = summary(sweep)["trials"]
    completed_runs: dict[str, int] = {}
    for run in sweep.iterdir():
        s = run / "summary.json"
        if run.is_dir() and s.is_file() and "_t" in run.name:
            trial = run.name.split("_")[1].split("-")[0]
            if json.loads(s.read_text()).get("status") == "completed":
                completed_runs[trial] = completed_runs.get(trial, 0) + 1
    twice = {t: n for t, n in completed_runs.items() if n > 1}
    kept = [t.number for t in before if t.state.name in ("COMPLETE", "PRUNED")]
    unchanged = all(after[n].state == before[n].state and after[n].params == before[n].params for n in kept)
    ok = (done.returncode == 0 and numbers == list(range(trials)) and finished and not twice and unchanged
          and [r["trial"] for r in records] == [f"t{n + 1:03d}" for n in range(trials)])
    print(f"resumed (exit {done.returncode}): trial numbers {numbers}; all complete or pruned: {finished}; "
          f"settled before the kill unchanged: {unchanged}; run twice: {twice or 'none'}; "
          f"records {len(records)} -> {'OK' if ok else 'FAILED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (lstm_sine has 25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="times to run the comparison (0: skip it)")
    parser.add_argument("--skip-resume", action="store_true")
    parser.add_argument("--resume-trials", type=int, default=8)
    parser.add_argument("--kill-after", type=int, default=3, help="settled trials before the kill")
    parser.add_argument("--keep", type=Path, help="keep the sweeps in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        ok = compare(args, tmp) if args.rounds else True
        if not args.skip_resume:
            ok = resume_check(args, tmp) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
