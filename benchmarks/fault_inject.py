"""Faults at random moments (issue 16), beside ``kill_resume.py``: a full disk (ENOSPC) at a random
write, and SIGTERM / SIGINT / SIGKILL at a random instant (wall-clock, or at a random call of a
set-up, checkpoint or final-evaluation function), during ``rnnlab train`` or ``--resume``. Then
the run is resumed (and evaluated) without faults.

Every outcome must be one of:
- exact: the run, resumed as often as needed, ends with the same metrics rows, test and best
  validation metrics as the same run left alone (and ``rnnlab eval`` agrees);
- one line: the faulty command printed one ``error:`` or ``interrupted:`` line (exit 2 / 130 /
  143) and left no run directory, or one whose summary says what happened (resumed: exact);
- nothing: killed before rnnlab's handlers were installed (interpreter start-up) or by SIGKILL,
  silently (no line is possible), and whatever it left is resumed exactly or refused in one line.
Anything else (a traceback, two lines, a summary that says ``running`` after the process ended,
a resume that is not exact) is a failure.

The disk-full fault is injected in the child process: ``os.fsync`` (every rnnlab file write
ends in one) or ``os.mkdir`` raises ``OSError(ENOSPC)`` from its N-th call on.

    python benchmarks/fault_inject.py --faults 50
    python benchmarks/fault_inject.py --faults 10 --seed 3 --keep
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
TIMINGS = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")
CONFIG = {
    "task": {"name": "sine", "mode": "window", "window": 4, "n_points": 240},
    "model": {"name": "lstm", "hidden_size": 8},
    "train": {"epochs": 3, "batch_size": 16, "lr": 0.01, "seed": 0, "threads": 1,
              "checkpoint_every": 3},
    "logging": {"plots": False},
}
# functions whose N-th call sends the signal: set-up, checkpoints, the final test evaluation
EVENTS = ("rnnlab.rundir.files:create_run_dir", "rnnlab.execution.lifecycle:open_run",
          "rnnlab.rundir.files:write_text", "rnnlab.rundir.files:write_json",
          "rnnlab.rundir.files:save_torch", "rnnlab.rundir.files:append_jsonl",
          "rnnlab.training.trainer:evaluate",
          "rnnlab.execution.lifecycle:evaluate", "rnnlab.execution.lifecycle:final_outputs",
          "rnnlab.execution.lifecycle:close_run",
          "rnnlab.execution.resume:restart_files", "rnnlab.execution.lifecycle:build")
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}
FORK = True


# ----------------------------------------------------------------------------- the child

def child(spec: dict[str, Any], argv: list[str]) -> None:
    """Install the fault described by ``spec``, then run the command line."""
    import importlib

    calls = {"n": 0}
    if spec["kind"] == "enospc":
        real_fsync, real_mkdir = os.fsync, os.mkdir

        def count() -> bool:
            calls["n"] += 1
            return calls["n"] >= spec["at"]

        def fsync(fd: int) -> None:
            if count():
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            if count():
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            real_mkdir(path, *args, **kwargs)

        os.fsync, os.mkdir = fsync, mkdir  # type: ignore[assignment]
    elif spec["kind"] == "event":
        module_name, name = spec["event"].split(":")
        module = importlib.import_module(module_name)
        real = getattr(module, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == spec["at"]:
                os.kill(os.getpid(), spec["signum"])
            return real(*args, **kwargs)

        setattr(module, name, wrapped)
    from rnnlab.cli import main

    sys.argv = ["rnnlab", *argv]
    main()


# ----------------------------------------------------------------------------- the driver

def environment(spec: Optional[dict[str, Any]] = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "MPLBACKEND": "Agg"}
    if spec is not None:
        env["RNNLAB_FAULT_SPEC"] = json.dumps(spec)
    return env


def command(args: list[str], spec: Optional[dict[str, Any]]) -> list[str]:
    if spec is None:
        return [sys.executable, "-m", "rnnlab", *args]
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


def run(args: list[str], spec: Optional[dict[str, Any]] = None, delay: Optional[float] = None,
        signum: Optional[int] = None) -> subprocess.CompletedProcess:
    """One rnnlab command with the fault ``spec`` (or a signal after ``delay`` seconds). With
    ``--fork`` (the default) it runs in a child forked from this process, which imported rnnlab
    and torch once (start-up costs seconds per process on a loaded machine), so the instants
    exclude the interpreter's start-up; ``--spawn`` starts a fresh interpreter each time."""
    if not FORK:
        proc = subprocess.Popen(command(args, spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=environment(spec))
        if delay is not None and signum is not None:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signum)
        out, err = proc.communicate(timeout=600)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = os.fdopen(1, "w", closefd=False)
                sys.stderr = os.fdopen(2, "w", closefd=False)
                child(spec or {"kind": "none"}, args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 (reported like an uncaught exception)
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        start, sent = time.monotonic(), False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if delay is not None and signum is not None and not sent and time.monotonic() - start >= delay:
                os.kill(pid, signum)
                sent = True
            time.sleep(0.005)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(status), out.read(), err.read())


def results(run_dir: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"rows": [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows],
            "test": summary.get("test"), "best_val": summary.get("best_val"),
            "status": summary.get("status")}


def lines_of(stderr: str) -> list[str]:
    """stderr's lines, less the notice a first signal prints while training stops gracefully."""
    return [line for line in stderr.splitlines() if line.strip()
            and not line.endswith("again to quit at once)") and not line.startswith("resuming ")]


def check_fault_output(proc: subprocess.CompletedProcess) -> tuple[str, Optional[str]]:
    """(how the faulty command ended, a problem or None)."""
    if "Traceback" in proc.stderr:
        return "traceback", proc.stderr[-2000:]
    lines, rc = lines_of(proc.stderr), proc.returncode
    if rc == 0:
        return "completed", None
    if rc in (2, 3):
        ok = len(lines) == 1 and lines[0].startswith("error: ")
        return "error line", None if ok else f"exit {rc} with stderr {lines!r}"
    if rc in (130, 143):
        ok = len(lines) == 1 and lines[0].startswith("interrupted")
        return "interrupted line", None if ok else f"exit {rc} with stderr {lines!r}"
    if rc < 0:  # died of the signal itself: SIGKILL, or before rnnlab's handlers existed
        return f"killed by {signal.Signals(-rc).name}", None if not lines else f"stderr {lines!r}"
    return f"exit {rc}", f"unexpected exit {rc}: {lines!r}"


def recover(runs_dir: Path, reference: dict[str, Any], evaluate: bool) -> tuple[str, Optional[str]]:
    """Resume what the fault left (until complete) and compare with the reference."""
    found = [p for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.is_dir() else []
    if not found:
        return "no run directory", None
    if len(found) > 1:
        return "several runs", f"{len(found)} run directories"
    run_dir = found[0]
    summary = run_dir / "summary.json"
    if summary.exists():
        status = json.loads(summary.read_text()).get("status")
        if status == "running":
            return "left running", "summary.json says 'running' after the process ended"
    for _ in range(3):
        proc = run(["train", "--resume", str(run_dir), "-q"])
        if proc.returncode == 0:
            break
        lines = lines_of(proc.stderr)
        if "Traceback" in proc.stderr or not (len(lines) == 1 and lines[0].startswith("error: ")):
            return "resume broken", f"exit {proc.returncode}: {proc.stderr[-1500:]}"
        return "resume refused in one line", None
    got = results(run_dir)
    if got != reference:
        return "resumed, not exact", json.dumps({"got": got, "want": reference})[:1500]
    if evaluate:
        proc = run(["eval", str(run_dir), "--json"])
        if proc.returncode != 0 or json.loads(proc.stdout)["metrics"] != reference["test"]:
            return "eval differs", proc.stdout[-500:] + proc.stderr[-500:]
    return "resumed exactly", None


def one_fault(item: tuple[dict[str, Any], dict[str, Any]]) -> tuple[str, list[str], Optional[str]]:
    """Run one planned fault and its recovery: (report line, outcome keys, failure or None)."""
    plan, ctx = item
    runs_dir, config = ctx["work"] / f"f{plan['i']}", ctx["config"]
    target, signame = plan["target"], plan["signame"]
    if target == "resume":  # a run stopped in epoch 1, then the fault hits its resume
        pre = run(["train", str(config), "--runs-dir", str(runs_dir), "-q"],
                  {"kind": "event", "event": "rnnlab.rundir.files:save_torch", "at": 3,
                   "signum": int(signal.SIGTERM)})
        if pre.returncode != 143:
            return f"[{plan['i'] + 1}] could not prepare a stopped run", ["failure"], pre.stderr[-500:]
        argv = ["train", "--resume", str(next(runs_dir.iterdir())), "-q"]
    else:
        argv = ["train", str(config), "--runs-dir", str(runs_dir), "-q"]
    if plan["kind"] == "enospc":
        label = f"ENOSPC from write {plan['at']}"
        proc = run(argv, {"kind": "enospc", "at": plan["at"]})
    elif plan["kind"] == "event":
        label = f"{signame} at call {plan['at']} of {plan['event'].split(':')[1]}"
        proc = run(argv, {"kind": "event", "event": plan["event"], "at": plan["at"],
                          "signum": int(SIGNALS[signame])})
    else:
        label = f"{signame} after {plan['delay']:.2f} s"
        proc = run(argv, None, plan["delay"], SIGNALS[signame])
    ended, problem = check_fault_output(proc)
    recovered = "-"
    if problem is None:
        recovered, problem = recover(runs_dir, ctx["reference"], plan["evaluate"])
    if recovered == "no run directory" and ended == "completed":
        problem = problem or "completed without a run directory"
    outcome = "exact" if recovered == "resumed exactly" else (
        "one line" if ended in ("error line", "interrupted line")
        or recovered == "resume refused in one line" else "nothing")
    keys = ["failure" if problem else outcome, f"  ended: {ended}", f"  then: {recovered}"]
    line = (f"[{plan['i'] + 1:2d}/{ctx['total']}] {target:6s} {label:45s} -> {ended}; {recovered} "
            f"{'FAIL' if problem else 'ok'}")
    shutil.rmtree(runs_dir, ignore_errors=True)
    return line, keys, f"{target} {label}: {problem}" if problem else None


def main() -> int:
    global FORK
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(json.loads(os.environ["RNNLAB_FAULT_SPEC"]), sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--jobs", type=int, default=1, help="faults run at a time")
    parser.add_argument("--spawn", action="store_true",
                        help="a fresh interpreter per command (slow; instants include start-up)")
    args = parser.parse_args()
    FORK = not args.spawn
    if FORK:
        import rnnlab.cli  # noqa: F401 (imported once, inherited by every forked command)
        import rnnlab.execution.lifecycle  # noqa: F401
        import rnnlab.execution.resume  # noqa: F401
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="rnnlab-faults-"))
    config = work / "fault.yaml"
    import yaml

    config.write_text(yaml.safe_dump(CONFIG))
    start = time.perf_counter()
    ref = run(["train", str(config), "--runs-dir", str(work / "ref"), "-q"])
    assert ref.returncode == 0, ref.stderr
    reference = results(Path(ref.stdout.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    writes = 40  # fsync + mkdir calls in a whole run are about 35: a later N lets the run complete
    print(f"reference run: {wall:.1f} s wall (under load); {len(reference['rows'])} epochs")
    plans = []
    for i in range(args.faults):  # drawn up front, so --jobs does not change which faults run
        target = "resume" if rng.random() < 0.25 else "train"
        kind = rng.choice(["enospc", "event", "event", "time"])
        signame = rng.choice(list(SIGNALS))
        plan: dict[str, Any] = {"i": i, "target": target, "kind": kind, "signame": signame,
                                "evaluate": rng.random() < 0.2}
        if kind == "enospc":
            plan["at"] = rng.randint(1, writes)
        elif kind == "event":
            plan["event"], plan["at"] = rng.choice(EVENTS), rng.randint(1, 3)
        else:
            plan["delay"] = rng.uniform(0, wall * 1.1)
        plans.append(plan)
    context = {"work": work, "config": config, "reference": reference, "total": args.faults}
    outcomes: Counter = Counter()
    failures: list[str] = []
    if args.jobs > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(args.jobs)
        done = pool.imap_unordered(one_fault, [(plan, context) for plan in plans])
    else:
        pool, done = None, map(one_fault, [(plan, context) for plan in plans])
    for line, keys, failure in done:
        print(line, flush=True)
        outcomes.update(keys)
        if failure:
            failures.append(failure)
    if pool is not None:
        pool.close()
    print(f"\n{args.faults} faults: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())
                                                if not k.startswith("  ")))
    for key in sorted(k for k in outcomes if k.startswith("  ")):
        print(f"{key}: {outcomes[key]}")
    for failure in failures:
        print("FAILURE:", failure[:3000])
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
