"""The conformance checks of a task, on each of its cases (see ``cases.py``): it builds, its
spec is coherent, its splits share no example or target position, no window crosses a split
(inputs of training windows stay in the training split; val/test inputs never read a later
split), the same seeds give the same training batches, and a perfect predictor gets perfect
metrics (and the spec's metric is among them)."""

from __future__ import annotations

import math
import tempfile
from itertools import combinations
from pathlib import Path
from typing import Any, Optional

import torch

from rnnlab.errors import RnnlabError
from rnnlab.tasks.base import Batch, Task, TaskSpec
from rnnlab.testing.cases import Case, all_cases, experiment
from rnnlab.testing.findings import Finding, Recorder, Status, describe_exception
from rnnlab.testing.layouts import Layout, layout, perfect
from rnnlab.testing.model_checks import CPU, kept_threads

Result = Optional[tuple[Status, str]]


def check_task(name: str) -> list[Finding]:
    """Every check of task ``name`` on each of its cases. An unknown name is a ``ConfigError``."""
    from rnnlab.registry import TASKS

    TASKS.get(name, "task")
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="rnnlab-check-") as tmp, kept_threads(), \
            torch.random.fork_rng(devices=[]):
        for case in all_cases(Path(tmp), name):
            check_case(Recorder(f"task '{case.label}'", findings), case)
    return findings


def check_case(rec: Recorder, case: Case) -> None:
    from rnnlab.training.build import build_task

    try:
        exp = experiment(case, case.model)
        task = build_task(exp, CPU)
    except RnnlabError as exc:
        rec.fail("build", exc.line())
        return
    except Exception as exc:
        rec.fail("build", describe_exception(exc))
        return
    rec.ok("build")
    rec.run("spec", lambda: coherent_spec(task.spec))
    lay = read_layout(rec, task)
    if lay is not None:
        rec.run("splits disjoint", lambda: disjoint(lay))
        rec.run("windows inside splits", lambda: windows_inside(lay))
    rec.run("batches deterministic", lambda: deterministic(exp, task))
    rec.run("perfect predictor", lambda: perfect_metrics(task))


def read_layout(rec: Recorder, task: Task) -> Optional[Layout]:
    try:
        lay = layout(task)
    except Exception as exc:
        rec.fail("splits disjoint", f"reading the split layout: {describe_exception(exc)}")
        return None
    if lay is None:
        note = "not checked: the task gives no split_layout() (see rnnlab.testing.Layout)"
        rec.skip("splits disjoint", note)
        rec.skip("windows inside splits", note)
    return lay


def coherent_spec(spec: TaskSpec) -> Result:
    problems = []
    if spec.input_size <= 0 or spec.output_size <= 0:
        problems.append(f"input_size {spec.input_size} and output_size {spec.output_size} must be > 0")
    if spec.mode not in ("min", "max"):
        problems.append(f"mode must be 'min' or 'max', got {spec.mode!r}")
    if spec.output == "horizon" and not spec.horizon:
        problems.append("output 'horizon' needs a horizon")
    if spec.window is not None and spec.window <= 0:
        problems.append(f"window must be > 0, got {spec.window}")
    if spec.stateful and spec.output != "sequence":
        problems.append("stateful tasks carry state between per-step predictions (output 'sequence')")
    return ("fail", "; ".join(problems)) if problems else None


def disjoint(lay: Layout) -> Result:
    if lay.problems:
        return "fail", lay.problems[0]
    what = "example" if lay.kind == "examples" else "target position"
    sets = {s: set(t.flatten().tolist()) for s, t in lay.targets.items()}
    for a, b in combinations(sets, 2):
        shared = sets[a] & sets[b]
        if shared:
            return "fail", f"{a} and {b} share {len(shared)} {what}(s), e.g. {min(shared)}"
    if lay.kind == "positions":
        ordered = sorted(lay.bounds.items(), key=lambda item: item[1])
        for (a, (_, stop_a)), (b, (start_b, _)) in zip(ordered, ordered[1:]):
            if a in lay.targets and b in lay.targets and stop_a > start_b:
                return "fail", f"the {a} split [.., {stop_a}) overlaps the {b} split [{start_b}, ..)"
    sizes = ", ".join(f"{s} {len(v)}" for s, v in sets.items())
    return "pass", f"{what}s: {sizes}"


def split_of(lay: Layout, position: int) -> str:
    for split, (start, stop) in lay.bounds.items():
        if start <= position < stop:
            return split
    return ""


def crossing(lay: Layout, position: int) -> str:
    split = split_of(lay, position)
    return f"it crosses into the {split} split" if split else "it lies past every split"


def windows_inside(lay: Layout) -> Result:
    if lay.kind == "examples":
        return "skip", "examples, not windows over a series"
    for split, (start, stop) in lay.bounds.items():
        targets = lay.targets.get(split)
        if targets is not None and targets.numel():
            bad = targets[(targets < start) | (targets >= stop)]
            if bad.numel():
                p = int(bad.flatten()[0])
                return "fail", (f"a {split} window's target at position {p} lies outside the {split} "
                                f"split [{start}, {stop}) ({crossing(lay, p)})")
        inputs = lay.inputs.get(split)
        if inputs is None or not inputs.numel():
            continue
        low = 0 if split in lay.context_before else start
        bad = inputs[(inputs < low) | (inputs >= stop)]
        if bad.numel():
            p = int(bad.flatten()[0])
            return "fail", f"a {split} window reads position {p}, outside [{low}, {stop}): {crossing(lay, p)}"
    return None


def first_batches(task: Task, seed: int, count: int = 3) -> list[Batch]:
    out = []
    for batch in task.train_batches(8, torch.Generator().manual_seed(seed)):
        out.append(batch)
        if len(out) == count:
            break
    return out


def differ(a: list[Batch], b: list[Batch]) -> Optional[str]:
    if len(a) != len(b):
        return f"{len(a)} and {len(b)} batches"
    for i, (p, q) in enumerate(zip(a, b)):
        for name in ("x", "y", "lengths"):
            u, v = getattr(p, name), getattr(q, name)
            if (u is None) != (v is None) or (u is not None and not torch.equal(u, v)):
                return f"batch {i}, {name}"
    return None


def deterministic(exp: Any, task: Task) -> Result:
    from rnnlab.training.build import build_task

    first = first_batches(task, 7)
    where = differ(first, first_batches(task, 7))
    if where:
        return "fail", f"the same generator seed gave other training batches on a second pass ({where})"
    where = differ(first, first_batches(build_task(exp, CPU), 7))
    if where:
        return "fail", f"a second build of the task with the same seeds gave other training batches ({where})"
    return None


def perfect_metrics(task: Task) -> Result:
    result = perfect(task)
    if result is None:
        return "skip", "no perfect predictor known for this task (rnnlab has them for its built-in tasks)"
    metrics, want = result
    metric = task.spec.metric
    for split, values in metrics.items():
        if metric not in values:
            return "fail", f"spec.metric '{metric}' is not among the {split} metrics ({', '.join(values)})"
        for name, target in want.items():
            got = values.get(name)
            if got is None:
                return "fail", f"the {split} metrics have no '{name}' ({', '.join(values)})"
            if not math.isfinite(got) or abs(got - target) > 1e-6 * max(1.0, abs(target)):
                return "fail", (f"a perfect predictor scores {name}={got:.6g} on the {split} split, "
                                f"expected {target:g}")
    shown = ", ".join(f"{k}={v:g}" for k, v in want.items())
    return "pass", f"{shown} on {', '.join(metrics)}"
