"""Measure what issue 6 promises for `rnnlab sweep`, with the shipped sine sweep (6 trials):

1. wall time of `--workers 2` vs `--workers 1` (target: ratio <= 0.6 on 2 cores), every trial
   completed, ranked, summary.csv written;
2. killing the sweep midway (after its first trials completed) and resuming it runs only the
   missing trials, and the final summary has all 6;
3. `rnnlab runs` and `rnnlab compare` work on those runs.

    python benchmarks/sweep.py                  # both parts, 1 round of timing
    python benchmarks/sweep.py --rounds 2       # alternate w1/w2 twice, report each and the best
    python benchmarks/sweep.py --kill KILL      # part 2 with SIGKILL instead of Ctrl-C (SIGINT)
    python benchmarks/sweep.py --rounds 0       # part 2 only; --skip-resume: part 1 only

Trials are whole processes (Python + torch start-up included), so this measures what a user waits.
Numbers are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "configs" / "sweep_sine_families.yaml"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))


def rnnlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "rnnlab", *args]


def sweep_dir(runs: Path) -> Path:
    found = sorted(p for p in runs.iterdir() if (p / "sweep.yaml").is_file())
    assert len(found) == 1, found
    return found[0]


def state(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text())


def timed_sweep(workers: int, root: Path) -> float:
    runs = root / f"w{workers}-{time.monotonic_ns()}"
    start = time.perf_counter()
    command = rnnlab("sweep", str(SWEEP), "--workers", str(workers), "--runs-dir", str(runs), "-q")
    out = subprocess.run(command, env=ENV, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"--workers {workers} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    d = sweep_dir(runs)
    rows = list(csv.DictReader((d / "summary.csv").read_text().splitlines()))
    assert len(rows) == 6 and all(r["status"] == "completed" for r in rows), rows
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert out.stdout.strip().splitlines()[-1] == rows[0]["run"]  # the best run, printed last
    print(f"--workers {workers}: {seconds:6.1f} s  (6/6 completed; best {rows[0]['trial']} "
          f"{rows[0]['model.name']}-{rows[0]['model.hidden_size']} val_mse {float(rows[0]['val_mse']):.4g})",
          flush=True)
    return seconds


def kill_and_resume(root: Path, sig: signal.Signals) -> None:
    runs = root / "resume"
    proc = subprocess.Popen(rnnlab("sweep", str(SWEEP), "--workers", "2", "--runs-dir", str(runs), "-q"),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            # SIGINT at its default in the child, whatever we inherited: Ctrl-C works
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            d = sweep_dir(runs)
            if state(d)["counts"].get("completed", 0) >= 2:
                break
        except (AssertionError, FileNotFoundError, json.JSONDecodeError):
            continue
    if proc.poll() is not None:
        sys.exit(f"the sweep ended (exit {proc.returncode}) before it could be killed midway")
    proc.send_signal(sig)
    proc.wait(timeout=120)
    before = state(d)
    done_before = {t["trial"]: t["run"] for t in before["trials"] if t["status"] == "completed"}
    print(f"killed with {sig.name} (exit {proc.returncode}): {before['counts']}", flush=True)
    out = subprocess.run(rnnlab("sweep", "--resume", str(d), "--workers", "2", "-q"), env=ENV,
                         capture_output=True, text=True, check=False)
    after = state(d)
    rerun = [t["trial"] for t in after["trials"] if t["trial"] not in done_before]
    kept = all(t["run"] == done_before[t["trial"]] and t["attempts"] == 1
               for t in after["trials"] if t["trial"] in done_before)
    rows = list(csv.DictReader((d / "summary.csv").read_text().splitlines()))
    ok = (out.returncode == 0 and kept and len(rows) == 6 and after["counts"] == {"completed": 6})
    print(f"resumed (exit {out.returncode}): ran {len(rerun)} missing trial(s) {rerun}, kept the "
          f"{len(done_before)} completed ones unchanged: {kept}; final summary: {after['counts']}, "
          f"{len(rows)} rows -> {'OK' if ok else 'FAILED'}", flush=True)
    if not ok:
        sys.exit(out.stdout + out.stderr)
    runs_and_compare(runs, d)


def runs_and_compare(runs: Path, d: Path) -> None:
    """3. `rnnlab runs` and `rnnlab compare` on those runs."""
    listed = json.loads(subprocess.run(rnnlab("runs", str(runs), "--status", "completed", "--json"),
                                       env=ENV, capture_output=True, text=True, check=True).stdout)["runs"]
    trials = state(d)["trials"]
    assert {r["path"] for r in listed} >= {t["run"] for t in trials}, listed
    best, worst = sorted(trials, key=lambda t: t["rank"])[:: len(trials) - 1]
    shown = subprocess.run(rnnlab("compare", best["run"], worst["run"]), env=ENV, capture_output=True,
                           text=True, check=True).stdout
    comparison = json.loads(subprocess.run(rnnlab("compare", str(d), "--json"), env=ENV, capture_output=True,
                                           text=True, check=True).stdout)
    assert len(comparison["runs"]) >= 6
    assert {"model.name", "model.hidden_size"} <= set(comparison["differences"])
    print(f"rnnlab runs: {len(listed)} completed runs listed; rnnlab compare (best vs worst):\n{shown}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1,
                        help="timing rounds, w1 and w2 alternating (0: none)")
    parser.add_argument("--kill", choices=["INT", "TERM", "KILL"], default="INT", help="signal for part 2")
    parser.add_argument("--skip-resume", action="store_true", help="only the timing part")
    args = parser.parse_args()
    print(f"{SWEEP.name}, {os.cpu_count()} cores, python {sys.version.split()[0]}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-sweep-") as tmp:
        root = Path(tmp)
        w1, w2 = [], []
        for i in range(args.rounds):
            pair = (1, 2) if i % 2 == 0 else (2, 1)
            for workers in pair:
                (w1 if workers == 1 else w2).append(timed_sweep(workers, root))
        if w1 and w2:
            ratio = min(w2) / min(w1)
            print(f"wall time --workers 2 / --workers 1 = {min(w2):.1f} / {min(w1):.1f} = {ratio:.2f} "
                  f"(target <= 0.6: {'met' if ratio <= 0.6 else 'NOT met'})", flush=True)
        if not args.skip_resume:
            kill_and_resume(root, signal.Signals[f"SIG{args.kill}"])


if __name__ == "__main__":
    main()
