"""The hostile-user fuzzer over every command, with a long budget (the suite runs a short one).

Cases, all run in process (``fuzzing.check``: the Typer app called with argv, output captured):
``train`` from generated configs and ``--set`` overrides (tiny step budget); ``config`` (its
output read back), ``check`` with failing plugins, ``generate`` with hostile numbers and sweep
files (``tests/fuzz_tools.py``); and ``eval``, ``predict``, ``generate``, ``forecast``,
``export``, ``track``, ``runs``, ``show``, ``compare`` (``--plot FILE``), ``diff``, ``plot``,
``config`` of a run's config.yaml, ``train`` from it (rerun) and ``train --resume`` on copies of
small runs trained once, with one of rnnlab's own output files damaged and hostile
arguments (``tests/fuzz_surface.py``). Then the round-trip property (``tests/test_roundtrip.py``:
what rnnlab writes, its strict readers read back) with as many examples.

Each case must exit 0, or print one ``error:`` line and exit 2 or 3, never a traceback; after a
refusal no file that existed before changed or vanished (sha256 of every file of the case's
workspace). Prints per command: cases, ok exits, one-line refusals, tracebacks, other output,
hash violations; exits 1 on any failure.

    python benchmarks/fuzz.py --cases 5000
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import fuzz_surface, fuzz_tools, fuzzing  # noqa: E402

KINDS = ("ok", "refused", "traceback", "bad output", "violation")
FAILURES: list[str] = []


def table() -> str:
    rows = sorted({command for command, _ in fuzzing.OUTCOMES})
    lines = [f"{'command':<10}{'cases':>7}" + "".join(f"{k:>12}" for k in KINDS)]
    for command in rows:
        counts = [fuzzing.OUTCOMES[(command, k)] for k in KINDS]
        lines.append(f"{command:<10}{sum(counts):>7}" + "".join(f"{c:>12}" for c in counts))
    total = [sum(fuzzing.OUTCOMES[(c, k)] for c in rows) for k in KINDS]
    lines.append(f"{'all':<10}{sum(total):>7}" + "".join(f"{c:>12}" for c in total))
    return "\n".join(lines)


def done() -> int:
    return sum(fuzzing.OUTCOMES.values())


def progress(every: int = 100) -> None:
    """A line every ``every`` cases, so a run cut short still says how far it got."""
    if done() % every == 0:
        print(f"... {done()} cases, {len(FAILURES)} failures", flush=True)


def hypothesis_sections(base: dict[str, Path], train: int, tools: int, sweeps: int) -> None:
    """train / config, check, generate / sweep files: hypothesis-generated (printed, not shrunk)."""
    budget = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      derandomize=False, phases=[Phase.generate])

    @settings(budget, max_examples=max(1, train))
    @given(fuzzing.configs())
    def train_cases(case: tuple[str, list[str]]) -> None:
        text, overrides = case
        with tempfile.TemporaryDirectory() as tmp:
            runs_dir = Path(tmp) / "runs"
            shutil.copytree(base["a"], runs_dir / base["a"].name)
            config = Path(tmp) / "c.yaml"
            config.write_bytes(text.encode("utf-8", "surrogatepass"))
            existing = {p.name for p in runs_dir.iterdir()}
            result = fuzzing.check(["train", str(config), "--runs-dir", str(runs_dir), "-q",
                                    *[x for o in overrides for x in ("--set", o)]],
                                   runs_dir, lambda p: Path(p).parts[0] not in existing, budget=True)
            if result.exit_code == 2:
                assert {p.name for p in runs_dir.iterdir()} == existing, result.output
            progress()

    def tool_case(command: str, case: dict, data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            shutil.copytree(base["a"], root / "runs" / base["a"].name)
            fuzz_tools.run_case(command, case, root, root / "runs" / base["a"].name, data)
            progress()

    @settings(budget, max_examples=max(1, tools))
    @given(st.sampled_from(["generate", "config", "check"]).flatmap(
        lambda c: st.tuples(st.just(c), fuzz_tools.tool_case(c))), st.data())
    def tool_cases(command_case: tuple[str, dict], data: st.DataObject) -> None:
        tool_case(*command_case, data)

    @settings(budget, max_examples=max(1, sweeps))
    @given(fuzz_tools.tool_case("sweep"), st.data())
    def sweep_cases(case: dict, data: st.DataObject) -> None:
        tool_case("sweep", case, data)

    for name, test, n in (("train", train_cases, train), ("config/check/generate", tool_cases, tools),
                          ("sweep files", sweep_cases, sweeps)):
        if n:
            try:
                test()
            except AssertionError as exc:  # hypothesis stops the section at its first failure
                FAILURES.append(f"{name}: {exc}")
                print(f"PROPERTY BROKEN in {name} cases:\n{exc}", flush=True)


def surface_cases(base: dict[str, Path], n: int, seed: int, until: float = float("inf")) -> None:
    """Every command that reads runs or rnnlab's own files, round robin; a failure is printed
    and counted, and the fuzzer goes on."""
    for i in range(n):
        if time.perf_counter() > until:
            print(f"time budget spent after {i} of {n} surface cases", flush=True)
            break
        command = fuzz_surface.COMMANDS[i % len(fuzz_surface.COMMANDS)]
        rng = random.Random(f"{seed}-{i}")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                fuzz_surface.run_case(command, base, Path(tmp), rng)
            except AssertionError as exc:
                FAILURES.append(f"{command} case {i} (seed {seed}): {exc}")
                print(f"PROPERTY BROKEN ({command}, case {i}, seed {seed}):\n{exc}",
                      flush=True)
        progress()


def roundtrip(examples: int) -> None:
    """The round-trip property tests of the suite with ``examples`` examples each."""
    import pytest

    os.environ["RNNLAB_ROUNDTRIP_EXAMPLES"] = str(examples)
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(REPO / "tests" / "test_roundtrip.py")])
    tests = 5  # the @given tests of test_roundtrip.py
    fuzzing.OUTCOMES[("roundtrip", "ok" if code == 0 else "violation")] += tests * examples
    if code != 0:
        FAILURES.append("roundtrip: tests/test_roundtrip.py failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="generated cases in all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweeps", type=int, default=None, help="of the cases, sweep files (default 2 %%)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="start no surface case after this long; the table counts what ran")
    args = parser.parse_args()
    random.seed(args.seed)
    n = args.cases
    sweeps = args.sweeps if args.sweeps is not None else n // 50
    train, tools, trips = n // 6, n // 8, n // 10
    surface = max(0, n - train - tools - sweeps - trips)
    folder = Path(tempfile.mkdtemp(prefix="rnnlab-fuzz-"))
    start = time.perf_counter()
    try:
        roundtrip(max(1, trips // 5))
        base = fuzz_surface.build_runs(folder)
        hypothesis_sections(base, train, tools, sweeps)
        until = start + 60 * args.minutes if args.minutes else float("inf")
        surface_cases(base, surface, args.seed, until)  # last: the longest, cut by --minutes
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"{done()} cases in {time.perf_counter() - start:.0f} s; failures: {len(FAILURES)}")
        print(table())
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
