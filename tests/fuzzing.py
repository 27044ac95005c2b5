"""The hostile-user fuzzer shared by ``tests/test_fuzz.py`` (a short budget, in ``make test``) and
``benchmarks/fuzz.py`` (a long one).

Cases are generated from the config schema itself (every field of ``train``/``logging``, the
sine task's and the recurrent/MLP models' options, read from their pydantic models): valid values
kept within a tiny step budget, and invalid ones (wrong types, booleans for numbers, numeric
strings, extreme sizes, deep nesting, unicode, control characters), as config files and as
``--set`` overrides. Run files of finished runs are mutated (truncated, wrong types, garbage lines,
foreign or pickled checkpoints). Commands: ``train`` (tiny budget), ``eval``, ``runs``, ``show``,
``compare``, ``predict``.

The property: exit 0, or one line (``error: ...``) and exit 2 or 3; never a traceback; nothing
that existed before the command was changed. A generated config may be valid and long
(``train.epochs: 9223372036854775807``): ``train`` cases run under a step budget (``STEP_BUDGET``
optimizer steps, then the run stops as on Ctrl-C: exit 130 with one ``interrupted:`` line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
import typing
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import yaml
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.config.schema import LoggingConfig, TrainConfig
from rnnlab.models.mlp import MLPOptions
from rnnlab.models.recurrent import LSTMOptions
from rnnlab.rundir import files as runs
from rnnlab.tasks.sine import SineOptions

runner = CliRunner()

BASE: dict[str, Any] = {
    "task": {"name": "sine", "mode": "window", "window": 4, "n_points": 200},
    "model": {"name": "lstm", "hidden_size": 4},
    "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "seed": 0, "threads": 1},
    "logging": {"plots": False},
}
# fields whose valid values would make a case slow: kept within a tiny budget when valid
BUDGET = {"epochs": (1, 2), "steps_per_epoch": (1, 3), "batch_size": (1, 16), "hidden_size": (1, 8),
          "num_layers": (1, 2), "n_points": (100, 300), "window": (1, 8), "seq_len": (2, 20),
          "eval_batch_size": (1, 64), "tokens_per_epoch": (1, 64), "log_every": (1, 5),
          "threads": (1, 4), "horizon": (1, 3), "stride": (1, 4), "warmup": (0, 4)}
SKIP = {"device", "precision", "name", "checkpoint_every", "tokens_per_epoch"}  # precision: CPU only
EXTREME_INTS = [0, -1, 2**31, 2**63 - 1, 2**63, 10**23, -(10**30), 10**12]
HOSTILE = st.one_of(
    st.booleans(), st.none(), st.sampled_from(["1", "1e3", "0x10", "true", "nan", "∞", "\u202e", "a\nb",
                                               "\x00", "", " ", "1_000"]),
    st.sampled_from(EXTREME_INTS), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                               st.integers(), max_size=2),
)


def _kinds(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [("literal", typing.get_args(annotation))]
    if origin is not None and origin not in (list, dict):
        return [k for a in typing.get_args(annotation) for k in _kinds(a)]
    return [annotation]


def valid_value(key: str, annotation: Any) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = []
    for kind in _kinds(annotation):
        if isinstance(kind, tuple):
            options.append(st.sampled_from(kind[1]))
        elif kind is bool:
            options.append(st.booleans())
        elif kind is int:
            low, high = BUDGET.get(key, (0, 5))
            options.append(st.integers(low, high))
        elif kind is float:
            options.append(st.floats(0.0, 1.0))
        elif kind is type(None):
            options.append(st.none())
    return st.one_of(options) if options else st.none()


def schema_fields() -> list[tuple[str, str, Any]]:
    """(section, key, annotation) for every field the fuzzer varies."""
    out: list[tuple[str, str, Any]] = []
    models: list[tuple[str, type[BaseModel]]] = [("train", TrainConfig), ("logging", LoggingConfig),
                                                 ("task", SineOptions), ("model", LSTMOptions),
                                                 ("model", MLPOptions)]
    for section, model in models:
        for key, info in model.model_fields.items():
            if key not in SKIP:
                out.append((section, key, info.annotation))
    return out


FIELDS = schema_fields()


@st.composite
def configs(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(YAML text, --set overrides): the base config with fields set from the schema."""
    cfg = json.loads(json.dumps(BASE))
    overrides: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        section, key, annotation = draw(st.sampled_from(FIELDS))
        hostile = draw(st.booleans())
        value = draw(HOSTILE if hostile else valid_value(key, annotation))
        if section == "model" and key == "hidden_sizes" or cfg["model"]["name"] == "mlp":
            cfg["model"] = {"name": "mlp", "hidden_sizes": [4]}
        if draw(st.booleans()):
            cfg[section][key] = value
        else:
            overrides.append(f"{section}.{key}={json.dumps(value) if value is not None else ''}")
    extra = draw(st.sampled_from(["none", "none", "none", "deep", "dup", "unicode key", "bad bytes",
                                  "set deep", "set huge seed"]))
    text = yaml.safe_dump(cfg, allow_unicode=True)
    if extra == "deep":
        depth = draw(st.integers(40, 3000))  # written by hand: json.dumps itself recurses
        text += "sweep: " + "[{a: " * (depth // 2) + "1" + "}]" * (depth // 2) + "\n"
    elif extra == "dup":
        text += "train: {epochs: 1}\n"
    elif extra == "unicode key":
        lookalike = draw(st.sampled_from(["tr\u0430in:", "train\u200b:", "'train\\n':"]))
        text = text.replace("train:", lookalike, 1)
    elif extra == "bad bytes":
        text = draw(st.sampled_from(["\ufeff", "\x00", "\ud800"])) + text
    elif extra == "set deep":
        overrides.append("train.seed=" + "[" * 2000 + "]" * 2000)
    elif extra == "set huge seed":
        overrides.append("train.seed=99999999999999999999999")
    return text, overrides


# ----------------------------------------------------------------------------- run files

def _set(path: Path, text: str | bytes) -> None:
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)


def mutate_run(run: Path, other: Path, rng: random.Random) -> str:
    """Damage one file of ``run`` (``other`` is another finished run); returns what was done."""
    summary = run / runs.SUMMARY
    data = json.loads(summary.read_text())
    kind = rng.choice(["truncate summary", "summary field", "summary not object", "metrics garbage",
                       "metrics row type", "config value", "foreign best", "foreign last", "pickled",
                       "random bytes best", "empty config", "huge config", "nothing"])
    if kind == "truncate summary":
        raw = summary.read_bytes()
        _set(summary, raw[: rng.randrange(len(raw))])
    elif kind == "summary field":
        key = rng.choice(sorted(data))
        data[key] = rng.choice([7, "x", [1], {"a": 1}, None, True, -1.5, {"loss": "bad"}])
        _set(summary, json.dumps(data))
    elif kind == "summary not object":
        _set(summary, json.dumps(rng.choice([[1], 3, "s", None])))
    elif kind == "metrics garbage":
        with open(run / runs.METRICS, "ab") as fh:
            fh.write(rng.choice([b"{not json}\n{}\n", b"[1, 2]\n", b"\x00\xff\n", b'{"epoch": "one"}\n']))
    elif kind == "metrics row type":
        _set(run / runs.METRICS, json.dumps({"epoch": 1, "train_loss": rng.choice(["x", [1], {}])}) + "\n")
    elif kind == "config value":
        text = (run / runs.CONFIG).read_text()
        value = rng.choice(["true", "x", "1e30", "[1]"])
        _set(run / runs.CONFIG, text.replace("hidden_size: 4", f"hidden_size: {value}"))
    elif kind == "foreign best":
        shutil.copy(other / runs.CHECKPOINTS / "best.pt", run / runs.CHECKPOINTS / "best.pt")
    elif kind == "foreign last":
        shutil.copy(other / runs.CHECKPOINTS / "last.pt", run / runs.CHECKPOINTS / "last.pt")
    elif kind == "pickled":
        name = rng.choice(["best.pt", "last.pt"])
        torch.save({"model": Path("/etc/passwd")}, run / runs.CHECKPOINTS / name)
    elif kind == "random bytes best":
        _set(run / runs.CHECKPOINTS / "best.pt", bytes(rng.randrange(256) for _ in range(rng.randrange(64))))
    elif kind == "empty config":
        _set(run / runs.CONFIG, "")
    elif kind == "huge config":
        _set(run / runs.CONFIG, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    return kind


# ----------------------------------------------------------------------------- the property

def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (by relative path)."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


STEP_BUDGET = 12
# (command, outcome) -> cases; outcome: ok, refused, traceback, bad output, violation
OUTCOMES: Counter = Counter()


def _outcome(result: Any, budget: bool, command: str) -> tuple[str, str]:
    """What the case's output says: ("ok"/"refused", "") or (failure kind, why)."""
    if "Traceback (most recent call last)" in result.output or (
            result.exception is not None and not isinstance(result.exception, SystemExit)):
        return "traceback", f"exception: {result.exception!r}"
    if result.exit_code == 0:
        return "ok", ""
    if command == "sweep" and result.exit_code == 1 and "some trials did not complete" in result.output:
        return "ok", ""  # a sweep ran and reports its failed (e.g. diverged) trials: exit 1 by design
    if budget and result.exit_code == 130:  # the step budget ran out
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        ok = len(lines) == 1 and lines[0].startswith("interrupted: ")
        return ("ok", "") if ok else ("bad output", "not one `interrupted:` line")
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning: ")]
    if result.exit_code not in (2, 3) or len(lines) != 1 or not lines[0].startswith("error: "):
        return "bad output", "not one `error:` line with exit 2 or 3"
    return "refused", ""


def check(args: list[str], before_root: Path, allow_new: Optional[Callable[[str], bool]] = None,
          budget: bool = False, allow_changed: Optional[Callable[[str], bool]] = None,
          command: Optional[str] = None) -> Any:
    """Run the CLI on ``args`` in process (a training run limited to ``STEP_BUDGET`` steps with
    ``budget``); record the outcome under ``command`` (default: ``args[0]``) in ``OUTCOMES``;
    assert the property; return the result. On success, files that existed may change only where
    ``allow_changed`` says (an ``--out`` given with ``--force``); on a refusal, none."""
    from unittest import mock

    from rnnlab.training.trainer import Trainer

    before = snapshot(before_root)
    real = Trainer.should_stop

    def should_stop(self: Trainer, step: int) -> bool:
        return self.state.step >= STEP_BUDGET or real(self, step)

    with mock.patch.object(Trainer, "should_stop", should_stop) if budget else contextlib.nullcontext():
        result = runner.invoke(app, args, catch_exceptions=True)
    shown = f"args={args!r}\nexit={result.exit_code}\n{result.output}"
    command = command or (args[0] if args else "?")
    kind, why = _outcome(result, budget, command)
    after = snapshot(before_root)
    if kind in ("ok", "refused"):
        changed = [p for p, h in before.items() if after.get(p) != h
                   and not (kind == "ok" and allow_changed is not None and allow_changed(p))]
        new = [p for p in set(after) - set(before) if allow_new is None or not allow_new(p)]
        if changed or new:
            kind, why = "violation", f"changed or removed: {changed}; new: {new}"
    OUTCOMES[(command, kind)] += 1
    assert kind in ("ok", "refused"), f"{kind}: {why}\n{shown}"
    return result


READ_ONLY = ("eval", "eval last", "runs", "runs json", "show", "compare", "compare json", "predict")


def read_only_args(command: str, run: Path, other: Path, sentiment: Path, rng: random.Random) -> list[str]:
    if command == "eval":
        return ["eval", str(run)]
    if command == "eval last":
        return ["eval", str(run), "--checkpoint", "last", "--json"]
    if command == "runs":
        return ["runs", str(run.parent)]
    if command == "runs json":
        return ["runs", str(run.parent), "--json"]
    if command == "show":
        return ["show", str(run)]
    if command == "compare":
        return ["compare", str(run), str(other)]
    if command == "compare json":
        return ["compare", str(run), str(other), "--json"]
    texts = rng.choice([["good movie"], ["", "x"], ["\x00\u202e"], ["a" * 10_000]])
    return ["predict", str(sentiment), *texts]
