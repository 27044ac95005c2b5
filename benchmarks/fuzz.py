"""The hostile-user fuzzer of ``tests/fuzzing.py`` with a long budget (the suite runs a short one).

A third of the cases train from generated configs and ``--set`` overrides (tiny step budget); a
third run ``eval``/``runs``/``show``/``compare``/``predict`` on run directories with a mutated file;
a third run ``generate``, ``config`` (its output read back), ``check`` with failing plugins and
generated sweep files (``tests/fuzz_tools.py``; ``--sweeps`` of them, as a valid one runs a trial). Each
must exit 0, or print one ``error:`` line and exit 2 or 3, never a traceback, and change nothing
that existed before. Prints the outcome counts; exits 1 on the first case that breaks the property
(hypothesis shrinks it and prints it).

    python benchmarks/fuzz.py --cases 2000
    python benchmarks/fuzz.py --cases 200 --seed 7
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import fuzz_tools, fuzzing  # noqa: E402
from tests.test_fuzz import train_tiny  # noqa: E402

OUTCOMES: Counter = Counter()


def progress() -> None:
    """A line every 100 cases, so a run cut short still says how far it got."""
    total = sum(v for k, v in OUTCOMES.items() if not k.startswith("mutation"))
    if total % 100 == 0:
        print(f"... {total} cases, no traceback so far", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="generated cases in all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweeps", type=int, default=100, help="of the tool cases, sweep files")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rnnlab-fuzz-"))
    a = train_tiny(folder, fuzzing.BASE, "a")
    b = train_tiny(folder, fuzzing.BASE, "b")
    s = train_tiny(folder, {"task": {"name": "sentiment"}, "model": {"name": "gru", "hidden_size": 4},
                            "train": {"epochs": 1, "steps_per_epoch": 1, "threads": 1},
                            "logging": {"plots": False}}, "s")
    budget = settings(max_examples=args.cases // 3, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), derandomize=False,
                      phases=[Phase.generate])  # a failure is printed as found, not shrunk (slow)

    @budget
    @given(fuzzing.configs())
    def train_cases(case: tuple[str, list[str]]) -> None:
        text, overrides = case
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            runs_dir = root / "runs"
            shutil.copytree(a, runs_dir / a.name)
            config = root / "c.yaml"
            config.write_bytes(text.encode("utf-8", "surrogatepass"))
            existing = {p.name for p in runs_dir.iterdir()}
            result = fuzzing.check(["train", str(config), "--runs-dir", str(runs_dir), "-q",
                                    *[x for o in overrides for x in ("--set", o)]],
                                   runs_dir, lambda p: Path(p).parts[0] not in existing, budget=True)
            if result.exit_code == 2:
                assert {p.name for p in runs_dir.iterdir()} == existing, result.output
            OUTCOMES[f"train exit {result.exit_code}"] += 1
            progress()

    @budget
    @given(st.sampled_from(fuzzing.READ_ONLY), st.integers(0, 2**32 - 1))
    def read_cases(command: str, seed: int) -> None:
        rng = random.Random(seed)
        with tempfile.TemporaryDirectory() as tmp:
            runs_dir = Path(tmp) / "runs"
            run, other, sentiment = runs_dir / a.name, runs_dir / (b.name + "-other"), runs_dir / s.name
            for src, dst in ((a, run), (b, other), (s, sentiment)):
                shutil.copytree(src, dst)
            kind = fuzzing.mutate_run(sentiment if command == "predict" else run, other, rng)
            result = fuzzing.check(fuzzing.read_only_args(command, run, other, sentiment, rng), runs_dir)
            OUTCOMES[f"{command.split()[0]} exit {result.exit_code}"] += 1
            OUTCOMES[f"mutation {kind}"] += 1
            progress()

    def tool_case(command: str, case: dict, data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            shutil.copytree(a, root / "runs" / a.name)
            OUTCOMES[fuzz_tools.run_case(command, case, root, root / "runs" / a.name, data)] += 1
            progress()

    @settings(budget, max_examples=max(0, args.cases // 3 - args.sweeps))
    @given(st.sampled_from(["generate", "config", "check"]).flatmap(
        lambda c: st.tuples(st.just(c), fuzz_tools.tool_case(c))), st.data())
    def tool_cases(command_case: tuple[str, dict], data: st.DataObject) -> None:
        tool_case(*command_case, data)

    @settings(budget, max_examples=args.sweeps)
    @given(fuzz_tools.tool_case("sweep"), st.data())
    def sweep_cases(case: dict, data: st.DataObject) -> None:
        tool_case("sweep", case, data)

    random.seed(args.seed)
    start = time.perf_counter()
    failed = False
    for name, test in (("train", train_cases), ("read-only commands", read_cases),
                       ("generate/config/check", tool_cases), ("sweep files", sweep_cases)):
        try:
            test()
        except AssertionError as exc:
            print(f"PROPERTY BROKEN in {name} cases:\n{exc}")
            failed = True
            break
    total = sum(v for k, v in OUTCOMES.items() if not k.startswith("mutation"))
    print(f"{total} cases in {time.perf_counter() - start:.0f} s (hypothesis also runs shrinking "
          f"and replays); no traceback: {not failed}")
    for key in sorted(OUTCOMES):
        print(f"  {key}: {OUTCOMES[key]}")
    shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
