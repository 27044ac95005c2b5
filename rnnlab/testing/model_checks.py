"""The conformance checks of a model family, on every task case it can be built for.

Per case (see ``cases.py``): it builds (a ``ConfigError``/``DataError`` refusal skips the case
with a note), its outputs have the spec's shape, a few Adam steps on one batch lower the loss,
its ``state_dict`` saved to a file and loaded into a freshly built model gives identical outputs,
outputs do not depend on padding when the task's sequences vary in length, outputs at a step do
not depend on later inputs where the task is causal, and two halves with the state carried equal
one pass. Once per model, a tiny real ``rnnlab`` run is trained and ``rnnlab eval`` of its saved
checkpoint must reproduce the summary's test metrics.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from rnnlab.config.loading import Experiment, build_experiment
from rnnlab.errors import RnnlabError
from rnnlab.models.base import Model, build_model
from rnnlab.tasks.base import Batch, Task, TaskSpec
from rnnlab.testing.cases import Case, all_cases, sections
from rnnlab.testing.findings import Finding, Recorder, Status, close, describe_exception, max_diff, shape_text

CPU = torch.device("cpu")
STEPS, LR = 15, 0.01  # "a few training steps" on one batch
ROWS = 4  # sequences used by the padding, causality and state checks
Result = Optional[tuple[Status, str]]


def check_model(name: str, task: Optional[str] = None, options: Optional[dict[str, Any]] = None,
                train_run: bool = True) -> list[Finding]:
    """Every check of model ``name`` on every registered task (or only ``task``), with model
    ``options`` over small default sizes. Unknown names are a ``ConfigError``."""
    from rnnlab.registry import MODELS, TASKS

    MODELS.get(name, "model")
    if task is not None:
        TASKS.get(task, "--task")
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="rnnlab-check-") as tmp, kept_threads(), \
            torch.random.fork_rng(devices=[]):
        folder = Path(tmp)
        built = 0
        trained = not train_run
        for case in all_cases(folder, task):
            rec = Recorder(f"model '{name}' on task '{case.label}'", findings)
            parts = build_case(rec, case, name, options)
            if parts is None:
                continue
            built += 1
            if not check_built(rec, *parts, folder):
                continue  # a wrong output shape: nothing else of this case is meaningful
            if not trained:
                trained = True
                rec.run("eval equals summary", functools.partial(eval_equals_summary, parts[0],
                                                                 folder / "runs"))
        if built == 0:
            where = f"task '{task}'" if task is not None else "any registered task"
            Recorder(f"model '{name}'", findings).fail(
                "build", f"cannot be built for {where} (every case was refused; see the notes)")
    return findings


@contextlib.contextmanager
def kept_threads() -> Iterator[None]:
    """Training and ``rnnlab eval`` set torch's thread count; the caller gets its own back."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@contextlib.contextmanager
def evaluating(model: Model) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def build_case(rec: Recorder, case: Case, name: str, options: Optional[dict[str, Any]]
               ) -> Optional[tuple[Experiment, Task, Model]]:
    """The case's experiment, task and model: with small sizes, else the model's defaults; a
    refusal (``ConfigError``, ``DataError``) skips the case with a note."""
    from rnnlab.training.build import build

    refusal: Optional[RnnlabError] = None
    for section in sections(name, options):
        try:
            exp = build_experiment(case.raw(section), f"check case '{case.label}'")
            task, model = build(exp, CPU)
        except RnnlabError as exc:
            refusal = refusal or exc
            continue
        except Exception as exc:
            rec.fail("build", describe_exception(exc))
            return None
        rec.ok("build", f"{sum(p.numel() for p in model.parameters())} parameters")
        return exp, task, model
    assert refusal is not None
    rec.skip("build", f"skipped, not supported here ({refusal.line()})")
    return None


def first_batch(task: Task, batch_size: int = 8) -> Batch:
    return next(iter(task.train_batches(batch_size, torch.Generator().manual_seed(0))))


def check_built(rec: Recorder, exp: Experiment, task: Task, model: Model, folder: Path) -> bool:
    """The per-case checks; False when the batch or the output shape already failed."""
    try:
        batch = first_batch(task)
    except Exception as exc:
        rec.fail("batch", f"the task's first training batch: {describe_exception(exc)}")
        return False
    spec = task.spec
    if not rec.run("output shape", lambda: output_shape(model, spec, batch)):
        for check in ("training lowers the loss", "checkpoint round trip", "padding", "causality",
                      "stateful carry"):
            rec.skip(check, "skipped: the output shape is wrong")
        return False
    rec.run("training lowers the loss", lambda: training_lowers_loss(task, model, batch))
    rec.run("checkpoint round trip", lambda: round_trip(exp, task, model, batch, folder))
    rec.run("padding", lambda: padding_invariance(model, spec, batch))
    rec.run("causality", lambda: causality(model, spec, batch))
    rec.run("stateful carry", lambda: stateful_carry(model, spec, batch))
    return True


# ----------------------------------------------------------------------------- helpers


def outputs(model: Model, spec: TaskSpec, x: torch.Tensor, lengths: Optional[torch.Tensor] = None
            ) -> torch.Tensor:
    """What the task reads from the model: the forward output, or the forecast for horizon tasks."""
    if spec.output == "horizon":
        return model.forecast(x, spec.horizon or 1)
    out, _ = model(x, lengths, None)
    return out


def garbage(spec: TaskSpec, like: torch.Tensor, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random inputs of the task's kind: token ids, or features (wider than the data's scale)."""
    gen = torch.Generator().manual_seed(seed)
    if spec.input_kind == "tokens":
        return torch.randint(0, spec.input_size, shape, generator=gen, dtype=like.dtype).to(like.device)
    return (3.0 * torch.randn(shape, generator=gen)).to(like.device, like.dtype)


def eval_loss(task: Task, model: Model, batch: Batch) -> float:
    with evaluating(model):
        return float(task.loss(model, batch)[0])


def flat_tensors(state: Any) -> list[torch.Tensor]:
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [t for s in state for t in flat_tensors(s)]
    return []


# ----------------------------------------------------------------------------- the checks


def output_shape(model: Model, spec: TaskSpec, batch: Batch) -> Result:
    with evaluating(model):
        out = outputs(model, spec, batch.x, batch.lengths)
    b = batch.size
    expected = {"last": (b, spec.output_size), "sequence": (b, int(batch.x.shape[1]), spec.output_size),
                "horizon": (b, spec.horizon or 1, spec.output_size)}[spec.output]
    if tuple(out.shape) != expected:
        return "fail", (f"expected {shape_text(expected)} for output '{spec.output}' "
                        f"(batch {b}, {spec.output_size} outputs), got {shape_text(out.shape)}")
    if not bool(torch.isfinite(out).all()):
        return "fail", "the outputs of a freshly built model are not all finite"
    return None


def training_lowers_loss(task: Task, model: Model, batch: Batch) -> Result:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return "skip", "the model has no trainable parameters"
    before = eval_loss(task, model, batch)
    optimizer = torch.optim.Adam(params, lr=LR)
    model.train()
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss, _ = task.loss(model, batch)
        if not math.isfinite(value := float(loss.detach())):
            return "fail", f"the training loss became {value} at step {step + 1}"
        loss.backward()
        if step == 0 and all(p.grad is None for p in params):
            return "fail", "no parameter received a gradient from the task's loss"
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
    after = eval_loss(task, model, batch)
    if not after < before:
        return "fail", (f"{STEPS} Adam steps (lr {LR}) on one batch did not lower its loss: "
                        f"{before:.4g} -> {after:.4g}")
    return "pass", f"{before:.4g} -> {after:.4g} in {STEPS} steps on one batch"


def round_trip(exp: Experiment, task: Task, model: Model, batch: Batch, folder: Path) -> Result:
    from rnnlab.rundir.files import load_checkpoint
    from rnnlab.training.evaluation import load_weights

    path = folder / "round_trip.pt"
    torch.save({"model": model.state_dict()}, path)  # as rnnlab's checkpoints hold it
    torch.manual_seed(1_234_567)  # another initialisation than the saved model's
    fresh = build_model(exp.model, task.spec, where="check").to(CPU)
    try:
        load_weights(fresh, load_checkpoint(path, CPU)["model"], path)
    except RnnlabError as exc:
        return "fail", f"the saved state_dict does not load into a freshly built model: {exc.what}"
    with evaluating(model), evaluating(fresh):
        want = outputs(model, task.spec, batch.x, batch.lengths)
        got = outputs(fresh, task.spec, batch.x, batch.lengths)
    if not torch.equal(want, got):
        return "fail", (f"a freshly built model loaded from the saved state_dict gives other outputs "
                        f"(max diff {max_diff(want, got):.3g}): something that shapes the outputs is "
                        "not in the state_dict (a non-persistent buffer, a tensor attribute, a "
                        "random draw at build?)")
    return None


def padding_invariance(model: Model, spec: TaskSpec, batch: Batch) -> Result:
    if spec.window is not None:
        return "skip", f"the task's sequences have a fixed length ({spec.window})"
    if spec.output == "horizon":
        return "skip", "forecasts from fixed windows"
    x = batch.x[:ROWS]
    n, steps = int(x.shape[0]), int(x.shape[1])
    if n < 2 or steps < 2:
        return "skip", "the first batch is too small to vary lengths"
    real = batch.lengths[:n].tolist() if batch.lengths is not None else [steps] * n
    stride = max(1, steps // (2 * n))
    lengths = [max(1, min(int(real[i]), steps - i * stride)) for i in range(n)]
    padded_to = steps + 3
    xp = garbage(spec, x, (n, padded_to, *x.shape[2:]))
    for i, length in enumerate(lengths):
        xp[i, :length] = x[i, :length]
    lens = torch.tensor(lengths, dtype=torch.int64)
    with evaluating(model):
        together = outputs(model, spec, xp, lens)
        for i, length in enumerate(lengths):
            alone = outputs(model, spec, x[i:i + 1, :length].contiguous(), lens[i:i + 1])
            a = alone[0] if spec.output == "last" else alone[0, :length]
            b = together[i] if spec.output == "last" else together[i, :length]
            if not close(a, b):
                return "fail", (f"the output for sequence {i} (length {length}) changed when it was "
                                f"batched with longer sequences and padded to {padded_to} steps "
                                f"(max diff {max_diff(a, b):.3g}); are `lengths` ignored?")
    return "pass", f"lengths {lengths} padded to {padded_to}"


def causality(model: Model, spec: TaskSpec, batch: Batch) -> Result:
    if not spec.causal:
        return "skip", "the task is not causal"
    if spec.output != "sequence":
        return "skip", "one prediction per window: no per-step outputs to check"
    x = batch.x[:ROWS]
    steps = int(x.shape[1])
    if steps < 2:
        return "skip", "the first batch has a single step"
    with evaluating(model):
        base = outputs(model, spec, x)
        for s in sorted({steps - 1, steps // 2}):
            xp = x.clone()
            xp[:, s] = garbage(spec, x, (x.shape[0], 1, *x.shape[2:]), seed=s)[:, 0]
            out = outputs(model, spec, xp)
            earlier = (out[:, :s] - base[:, :s]).abs().double()
            per_step = earlier.transpose(0, 1).reshape(s, -1).amax(1) if s else earlier.new_zeros(0)
            tol = 1e-5 * (1.0 + float(base.abs().max()))
            bad = (per_step > tol).nonzero().flatten()
            if len(bad):
                return "fail", (f"output at step {int(bad[0])} changed when only step {s} was perturbed "
                                f"(max diff {float(per_step.max()):.2g})")
    return None


def stateful_carry(model: Model, spec: TaskSpec, batch: Batch) -> Result:
    if spec.output != "sequence":
        return "skip", "one prediction per window: no state is carried between windows"
    x = batch.x[:ROWS]
    steps = int(x.shape[1])
    if steps < 2:
        return "skip", "the first batch has a single step"
    half = steps // 2
    with evaluating(model):
        full, state_full = model(x, None, None)
        first, state = model(x[:, :half].contiguous(), None, None)
        if state is None:
            if spec.stateful:
                return "fail", ("the task carries state across batches (spec.stateful) but the model "
                                "returned no state")
            return "skip", "the model returns no state"
        second, state_end = model(x[:, half:].contiguous(), None, state)
    joined = torch.cat([first, second], dim=1)
    if not close(joined, full):
        return "fail", (f"two halves ({half} + {steps - half} steps) with the state carried differ from "
                        f"one pass over the {steps} steps (max diff {max_diff(joined, full):.3g})")
    ends, fulls = flat_tensors(state_end), flat_tensors(state_full)
    if len(ends) == len(fulls) and all(a.shape == b.shape for a, b in zip(ends, fulls)):
        for a, b in zip(ends, fulls):
            if not close(a, b):
                return "fail", (f"the state after two halves differs from the state after one pass "
                                f"(max diff {max_diff(a, b):.3g})")
    return None


def eval_equals_summary(exp: Experiment, runs_dir: Path) -> Result:
    """A 3-step ``rnnlab`` run, then ``rnnlab eval`` of its best checkpoint against its summary."""
    from rnnlab.common.console import Reporter
    from rnnlab.execution.lifecycle import train_run
    from rnnlab.rundir.files import read_summary
    from rnnlab.training.evaluation import evaluate_run

    raw = exp.to_dict()
    raw["train"]["steps_per_epoch"] = 3
    raw["train"]["tokens_per_epoch"] = None
    tiny = build_experiment(raw, "check: tiny run")
    run_dir = train_run(tiny, runs_dir, Reporter(quiet=True, stream=io.StringIO()))
    summary = read_summary(run_dir)
    if summary.get("status") != "completed":
        return "fail", f"the tiny run {run_dir} ended {summary.get('status')!r}: {summary.get('error')}"
    test = summary.get("test") or {}
    again = evaluate_run(run_dir, "test")
    if set(test) != set(again):
        return "fail", (f"rnnlab eval reports metrics {sorted(again)}, the summary {sorted(test)}")
    for key, value in test.items():
        a, b = float(value), float(again[key])
        if not (a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6 * max(abs(a), abs(b))):
            return "fail", (f"rnnlab eval of the saved best checkpoint gives {key}={b:.8g}, the "
                            f"summary's test metrics say {a:.8g} (run {run_dir})")
    return "pass", f"{len(test)} test metrics of a 3-step run"
