"""What the task checks need to see of a task: which examples or series positions each split
reads and scores (``Layout``), and a perfect predictor (``Oracle``) with the metrics it must
reach. Built-in tasks are read here; a plugin task may provide ``split_layout() -> Layout``
itself (otherwise its split checks are skipped with a note).

How the built-in tasks are seen
- ``mnist``: the image rows of each split; ``sentiment``: each example matched to the source row
  it came from (text and label), so a row used twice or in two splits shows.
- ``sine``, ``series``: the positions of every window's inputs and targets (``sine`` locates its
  input values in the generated series, which are all distinct).
- ``adding``, ``copy``, ``selective_copy`` (generated): each sequence's id is its content, so a
  sequence drawn into two splits shows; their oracle computes the answer from the inputs
  (``task.answer``), not from a lookup.
- ``charlm``: the text is replaced by its own positions (character i is "i") for the duration
  of the check, so the training batches and the evaluation streams show the positions they read;
  an oracle that predicts "x + 1" then must score loss 0 on every split.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Optional

import torch
from torch import nn

SPLITS = ("train", "val", "test")
CONFIDENT = 40.0  # the oracle's logit margin: cross-entropy ~ 1e-17, i.e. 0


@dataclass
class Layout:
    """``examples``: ``targets[split]`` are example ids (N,). ``positions``: ``targets[split]``
    (N, K) and ``inputs[split]`` (N, L) are series positions per window, ``bounds[split]`` the
    split's [start, stop); splits in ``context_before`` may read inputs before their start."""

    kind: Literal["examples", "positions"]
    targets: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)
    context_before: frozenset[str] = frozenset()
    problems: list[str] = field(default_factory=list)  # found while reading the layout


def key(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


class Oracle(nn.Module):
    """A model that answers from a lookup of its inputs: logits (classification) or values."""

    def __init__(self, answer: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]) -> None:
        super().__init__()
        self.answer = answer

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: Any = None
                ) -> tuple[torch.Tensor, Any]:
        return self.answer(x, lengths), None


def one_hot_logits(labels: torch.Tensor, classes: int) -> torch.Tensor:
    return nn.functional.one_hot(labels.clamp(min=0), classes).float() * CONFIDENT


# ----------------------------------------------------------------------------- layouts


def layout(task: Any) -> Optional[Layout]:
    own = getattr(task, "split_layout", None)
    if callable(own):
        return own()
    reader = LAYOUTS.get(builtin(task))
    return reader(task) if reader is not None else None


def builtin(task: Any) -> str:
    """The module of the built-in task class ``task`` is (or derives from), else ''."""
    for cls in type(task).__mro__:
        if cls.__module__ in LAYOUTS:
            return cls.__module__
    return ""


def _mnist_layout(task: Any) -> Layout:
    return Layout("examples", {s: task.rows[s].cpu() for s in SPLITS})


def _sentiment_layout(task: Any) -> Layout:
    pool: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    row_id = 0
    for rows in task.sources.values():
        for row in rows:
            tokens = task.tokenize(row.text)
            if tokens and row.label in task.class_ids:
                pool[(tuple(tokens), task.class_ids[row.label])].append(row_id)
            row_id += 1
    out, problems = {}, []
    for split in SPLITS:
        ids = []
        for ex in task.examples[split]:
            left = pool.get((tuple(ex.tokens), ex.label))
            if not left:
                problems.append(f"a {split} example ({' '.join(ex.tokens)[:40]!r}) is used more often than "
                                "the data holds it, or is not in the data")
                continue
            ids.append(left.pop(0))
        out[split] = torch.tensor(ids, dtype=torch.int64)
    return Layout("examples", out, problems=problems[:1])


def locate(values: torch.Tensor, series: torch.Tensor) -> Optional[torch.Tensor]:
    """Positions of ``values`` in ``series`` (all distinct), or None where that cannot be told."""
    flat = series.flatten().cpu()
    order = torch.argsort(flat)
    ranked = flat[order]
    if len(ranked) > 1 and bool((ranked[1:] == ranked[:-1]).any()):
        return None
    v = values.cpu().flatten()
    at = torch.searchsorted(ranked, v).clamp(max=len(ranked) - 1)
    if not bool((ranked[at] == v).all()):
        return None
    return order[at].view(values.shape)


def _sine_layout(task: Any) -> Layout:
    targets, inputs, problems = {}, {}, []
    for split in SPLITS:
        w = task.windows[split]
        targets[split] = w["pos"].cpu()
        found = locate(w["x"][..., 0], task.series)
        if found is None:
            problems.append(f"the {split} inputs are not values of the series")
            found = torch.zeros(0, dtype=torch.int64)
        inputs[split] = found
    context = frozenset({"val", "test"}) if task.options.mode == "seq2seq" else frozenset()
    return Layout("positions", targets, inputs, dict(task.bounds), context, problems)


def _series_layout(task: Any) -> Layout:
    targets = {s: task.index[s][1].cpu() for s in SPLITS}
    inputs = {s: task.index[s][0].cpu() for s in SPLITS}
    context = frozenset({"val", "test"}) if task.options.context == "previous" else frozenset()
    return Layout("positions", targets, inputs, dict(task.bounds), context)


@contextlib.contextmanager
def positions_as_text(task: Any) -> Iterator[int]:
    """charlm: the text replaced by its positions while the block runs (yields its length)."""
    original = task.ids
    task._ids = torch.arange(len(original), device=original.device)
    try:
        yield len(original)
    finally:
        task._ids = original


def _charlm_layout(task: Any) -> Layout:
    targets, inputs = {}, {}
    with positions_as_text(task) as n:
        xs, ys = [], []
        for batch in task.train_batches(8, torch.Generator().manual_seed(0)):
            xs.append(batch.x.reshape(-1).cpu())
            ys.append(batch.y.reshape(-1).cpu())
        inputs["train"], targets["train"] = torch.cat(xs)[:, None], torch.cat(ys)[:, None]
        for split in ("val", "test"):
            seen: list[torch.Tensor] = []
            task.evaluate(_echo(n, seen), split, 32)
            read = torch.cat([s.reshape(-1) for s in seen])[:, None]
            inputs[split], targets[split] = read, read + 1  # the oracle check proves targets = x + 1
    same = task.bounds["test"] == task.bounds["val"]  # task.test_fraction 0: test is val
    return Layout("positions", {s: t for s, t in targets.items() if not (same and s == "test")}, inputs,
                  dict(task.bounds), frozenset({"val", "test"}))


def _echo(n: int, seen: list[torch.Tensor]) -> Oracle:
    def answer(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        seen.append(x.detach().cpu())
        return one_hot_logits((x + 1).clamp(max=n - 1), n)
    return Oracle(answer)


def _memory_layout(task: Any) -> Layout:
    flat = [task.x[s].reshape(len(task.x[s]), -1).cpu() for s in SPLITS]
    _, ids = torch.unique(torch.cat(flat), dim=0, return_inverse=True)
    return Layout("examples", dict(zip(SPLITS, ids.split([len(f) for f in flat]))))


def _memory_oracle(task: Any) -> tuple[Oracle, dict[str, float]]:
    if task.spec.output == "last":  # adding
        return Oracle(lambda x, _: task.answer(x)), {"loss": 0.0, "mse": 0.0, "mse_over_baseline": 0.0}
    k, classes = task.options.n_tokens, task.spec.output_size

    def answer(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        out = torch.zeros(len(x), x.shape[1], classes, device=x.device)
        out[:, -k:] = one_hot_logits(task.answer(x), classes)
        return out
    return Oracle(answer), {"loss": 0.0, "accuracy": 1.0, "sequence_accuracy": 1.0}


LAYOUTS: dict[str, Callable[[Any], Layout]] = {
    "rnnlab.tasks.mnist": _mnist_layout, "rnnlab.tasks.sentiment": _sentiment_layout,
    "rnnlab.tasks.sine": _sine_layout, "rnnlab.tasks.series": _series_layout,
    "rnnlab.tasks.charlm": _charlm_layout, "rnnlab.tasks.memory": _memory_layout,
}


# ----------------------------------------------------------------------------- perfect predictors


def lookup(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[bytes, torch.Tensor]:
    table: dict[bytes, torch.Tensor] = {}
    for x, y in pairs:
        for i in range(len(x)):
            table.setdefault(key(x[i]), y[i])
    return table


def answer_from(table: dict[bytes, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    missing = [i for i in range(len(x)) if key(x[i]) not in table]
    if missing:
        raise LookupError(f"the task evaluated input {missing[0]} of a batch that none of its "
                          "splits holds")
    return torch.stack([table[key(x[i])] for i in range(len(x))])


@contextlib.contextmanager
def predicting(task: Any, table: dict[bytes, torch.Tensor]) -> Iterator[None]:
    """Forecasting tasks: the task's own ``predict`` replaced by the lookup for the block."""
    task.predict = lambda model, x: answer_from(table, x).to(x.device)
    try:
        yield
    finally:
        del task.predict


def perfect(task: Any) -> Optional[tuple[dict[str, dict[str, float]], dict[str, float]]]:
    """(metrics per split of a perfect predictor, the values they must have), or None when the
    task has no built-in oracle."""
    from rnnlab.training.evaluation import evaluate

    module = builtin(task)
    zero = {"loss": 0.0}
    if module == "rnnlab.tasks.sine":
        table = lookup([(task.windows[s]["x"], task.windows[s]["y"]) for s in SPLITS])
        with predicting(task, table):
            return {s: evaluate(task, Oracle(lambda x, _: x), s, 32) for s in SPLITS}, {"mse": 0.0}
    if module == "rnnlab.tasks.series":
        table = lookup([task.gather(s, slice(None)) for s in SPLITS])
        with predicting(task, table):
            return ({s: evaluate(task, Oracle(lambda x, _: x), s, 32) for s in SPLITS},
                    {"mse": 0.0, "mae": 0.0, "mae_data": 0.0})
    if module == "rnnlab.tasks.mnist":
        table = lookup([(task.batch(task.rows[s]).x, task.labels[task.rows[s]]) for s in SPLITS])
        oracle = Oracle(lambda x, _: one_hot_logits(answer_from(table, x), 10).to(x.device))
        return {s: evaluate(task, oracle, s, 32) for s in SPLITS}, {**zero, "accuracy": 1.0}
    if module == "rnnlab.tasks.sentiment":
        classes = len(task.classes)
        table = {}
        for s in SPLITS:
            split = task.splits[s]
            for i in range(len(split.lengths)):
                table[key(split.ids[i, :int(split.lengths[i])])] = split.labels[i]

        def answer(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
            assert lengths is not None, "sentiment batches carry lengths"
            rows = [x[i, :int(lengths[i])] for i in range(len(x))]
            return one_hot_logits(torch.stack([table[key(r)] for r in rows]), classes).to(x.device)
        return {s: evaluate(task, Oracle(answer), s, 32) for s in SPLITS}, {**zero, "accuracy": 1.0}
    if module == "rnnlab.tasks.memory":
        oracle, want = _memory_oracle(task)
        return {s: evaluate(task, oracle, s, 32) for s in SPLITS}, want
    if module == "rnnlab.tasks.charlm":
        with positions_as_text(task) as n:
            out = {s: evaluate(task, _echo(n, []), s, 32) for s in ("val", "test")}
        return out, {**zero, "perplexity": 1.0}
    return None
