"""kill -9 a training process at random moments, resume it, and check it ends exactly like the
same run left alone (issue 7's "done when").

Each trial starts ``rnnlab train CONFIG``, waits for its first checkpoint, then SIGKILLs it after
a random delay; ``rnnlab train --resume RUN`` continues it (and is itself killed again, ``--kills``
times in all). The finished run must have one metrics line per epoch, equal to the reference
run's (timings aside), and the same test metrics and best validation metrics.

    python benchmarks/kill_resume.py --trials 10
    python benchmarks/kill_resume.py configs/gru_sine_seq2seq.yaml --set train.epochs=6 \\
        --set train.checkpoint_every=20 --trials 5 --kills 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TIMINGS = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")


def rnnlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "rnnlab", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def results(run: Path) -> dict[str, Any]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    summary = json.loads((run / "summary.json").read_text())
    return {"rows": [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines],
            "test": summary.get("test"), "best_val": summary.get("best_val"),
            "status": summary.get("status")}


def reference(config: str, overrides: list[str], runs_dir: Path) -> tuple[Path, float]:
    """The run left alone, and how long it trained."""
    out = subprocess.run(rnnlab("train", config, "--runs-dir", str(runs_dir), "-q", *overrides),
                         capture_output=True, text=True, env=environment(), check=True).stdout
    run = Path(out.strip().splitlines()[-1])
    return run, json.loads((run / "summary.json").read_text())["train_seconds"]


def training_started(runs_dir: Path, run: Path | None, since: float) -> Path | None:
    """The run once it trains from a checkpoint: a fresh run has written last.pt; a resumed one
    has rewritten summary.json (it does so right before training)."""
    if run is None:
        found = list(runs_dir.glob("*/checkpoints/last.pt"))
        return found[0].parent.parent if found else None
    summary = run / "summary.json"
    return run if summary.exists() and summary.stat().st_mtime > since else None


def kill_after_first_checkpoint(command: list[str], runs_dir: Path, run: Path | None,
                                max_delay: float, rng: random.Random) -> tuple[Path, float, bool]:
    """Start ``command``; once it trains from a checkpoint, SIGKILL it after a random delay.
    Returns the run directory, the delay and whether the process was still running then."""
    since = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=environment())
    while (started := training_started(runs_dir, run, since)) is None:
        if proc.poll() is not None:
            raise SystemExit(f"training ended before its first checkpoint: {proc.stderr.read()}")
        time.sleep(0.01)
    delay = rng.uniform(0, max_delay)
    time.sleep(delay)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return started, delay, alive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=str(REPO / "configs" / "rnn_sine.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override passed to rnnlab train (repeatable)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs per trial (the resumes too)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    args = parser.parse_args()
    overrides = [item for o in ["train.threads=1", *args.overrides] for item in ("--set", o)]
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = Path(folder)
        alone, seconds = reference(args.config, overrides, runs_dir / "reference")
        expected = results(alone)
        print(f"reference run: {len(expected['rows'])} epochs, {seconds:.1f}s training, "
              f"test {expected['test']}")
        matches = 0
        for trial in range(1, args.trials + 1):
            trial_dir = runs_dir / f"trial{trial}"
            command = rnnlab("train", args.config, "--runs-dir", str(trial_dir), "-q", *overrides)
            run, kills = None, []
            for _ in range(args.kills):
                run, delay, alive = kill_after_first_checkpoint(command, trial_dir, run, seconds, rng)
                kills.append(f"{delay:.2f}s{'' if alive else ' (already done)'}")
                command = rnnlab("train", "--resume", str(run), "-q")
            assert run is not None
            done = subprocess.run(command, capture_output=True, text=True, env=environment())
            got = results(run)
            same = done.returncode == 0 and got == expected
            matches += same
            print(f"trial {trial}: SIGKILL at +{', +'.join(kills)} into training; final resume rc="
                  f"{done.returncode}; {len(got['rows'])} metric lines; "
                  f"{'IDENTICAL' if same else 'DIFFERENT'}" + ("" if same else f"\n{done.stderr}"))
        print(f"{matches}/{args.trials} resumed runs identical to the run left alone "
              f"(every metrics.jsonl line, test and best-val metrics)")
        sys.exit(0 if matches == args.trials else 1)


if __name__ == "__main__":
    main()
