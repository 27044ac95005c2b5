"""Round trip as a property: whatever rnnlab writes (the resolved config.yaml, summary.json, vocab
files, sweep files and the sweep's summary.json) its own strict readers read back unchanged, for
generated names, keys and values: numbers, booleans and nulls spelled as strings (``1e3``, ``.inf``,
``true``, ``~``, ``0x10``), unicode, and special floats where the file allows them."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.safeio import dump_yaml, load_yaml
from rnnlab.config.loading import build_experiment, read_yaml
from rnnlab.config.names import name_problem
from rnnlab.rundir import files as runs
from rnnlab.sweeps.results import read_records
from rnnlab.sweeps.sweepfile import load_sweep, parse_sweep
from rnnlab.tasks.charlm import Vocab as CharVocab
from rnnlab.tasks.sentiment import LABELS_FILE, VOCAB_FILE, load_artifacts
from rnnlab.tasks.text import PAD, UNK
from rnnlab.tasks.text import Vocab as TokenVocab

from .conftest import SINE_TINY

# strings every YAML reader is tempted to take for something else
TRICKY = ["1e3", "1E3", "+1e-3", "-1.5e+10", "1_000", ".inf", "-.Inf", ".NaN", "nan", "inf", "true",
          "False", "yes", "off", "null", "~", "", "0x10", "0o17", "017", "1:20", "2001-12-14", "<<", "=",
          "- a", "a: b", "#x", "'q'", '"dq"', "é☃", "\u2028", " lead", "trail ", "1e3 "]
texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))
names = st.one_of(st.sampled_from(TRICKY), st.text(max_size=20)).filter(lambda n: name_problem(n) is None)
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), floats, texts)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(texts, inner, max_size=4)),
                      max_leaves=12)
# benchmarks/fuzz.py runs these with more examples (RNNLAB_ROUNDTRIP_EXAMPLES)
EXAMPLES = int(os.environ.get("RNNLAB_ROUNDTRIP_EXAMPLES", "60"))
FAST = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and a type change counting as a difference (1 vs 1.0 vs True)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


@FAST
@given(values)
def test_yaml_writer_and_strict_reader_agree(value: Any) -> None:
    assert same(load_yaml(dump_yaml({"v": value}))["v"], value)


@FAST
@given(name=names, extra=st.dictionaries(texts, scalars, max_size=3))
def test_resolved_config_reads_back(tmp_path_factory, name: str, extra: dict[str, Any]) -> None:
    """config.yaml as a run writes it: the same experiment when read back (the name stays a string)."""
    raw = {**SINE_TINY, "name": name, "sweep": extra}  # sweep: the free-form mapping a trial keeps
    exp = build_experiment(raw)
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    runs.write_text(path, exp.to_yaml())
    again = build_experiment(read_yaml(path), str(path))
    assert same(again.to_dict(), exp.to_dict())
    assert again.name == name


@FAST
@given(name=names, run_id=names, metrics=st.dictionaries(texts, st.one_of(st.none(), floats), max_size=4),
       data=st.dictionaries(texts, values, max_size=3))
def test_summary_reads_back(tmp_path_factory, name: str, run_id: str, metrics: dict[str, Any],
                            data: dict[str, Any]) -> None:
    run = tmp_path_factory.mktemp("run")
    summary = {"status": "completed", "run_id": run_id, "name": name, "task": "sine", "model": "lstm",
               "metric": "mse", "mode": "min", "best_val": metrics, "test": metrics, "data": data,
               "steps": 3, "train_seconds": 0.5}
    runs.write_json(run / runs.SUMMARY, summary)
    assert same(runs.read_summary(run), summary)


@FAST
@given(chars=st.lists(st.characters(), unique=True, max_size=30),
       tokens=st.lists(texts, unique=True, max_size=10),
       classes=st.lists(texts, unique=True, min_size=2, max_size=4))
def test_vocab_files_read_back(tmp_path_factory, chars: list[str], tokens: list[str],
                               classes: list[str]) -> None:
    folder = tmp_path_factory.mktemp("vocab")
    runs.write_json(folder / "chars.json", CharVocab(chars).to_json({"source": "x"}))
    assert CharVocab.load(folder / "chars.json")[0].chars == sorted(chars)
    vocab = TokenVocab([PAD, UNK, *[t for t in tokens if t not in (PAD, UNK)]])
    runs.write_json(folder / VOCAB_FILE, vocab.to_json())
    runs.write_json(folder / LABELS_FILE, {"classes": classes})
    read_vocab, read_classes = load_artifacts(folder)
    assert read_vocab.tokens == vocab.tokens and read_classes == classes


@FAST
@given(name=names.filter(str.strip), key=st.sampled_from(["model.hidden_size", "train.lr", "logging.tags.x"]),
       grid=st.lists(scalars, min_size=1, max_size=4, unique_by=repr), trials=st.integers(1, 50),
       seed=st.integers(0, 2**63))
def test_sweep_files_read_back(tmp_path_factory, name: str, key: str, grid: list[Any], trials: int,
                               seed: int) -> None:
    """sweep.yaml as a sweep writes it (resolved, base inline) parses into the same sweep, and the
    sweep's summary.json into the same records."""
    folder = tmp_path_factory.mktemp("sweep")
    raw = {"name": name, "base": dict(SINE_TINY), "grid": {key: grid}, "seed": seed,
           "random": {"trials": trials, "train.weight_decay": {"uniform": [0.0, 0.1]}}}
    sweep = parse_sweep(raw, "sweep.yaml", folder, "default")
    runs.write_text(folder / "sweep.yaml", dump_yaml(sweep.to_dict()))
    again = load_sweep(folder / "sweep.yaml")
    assert same(again.to_dict(), sweep.to_dict())
    record = {"trial": "t001", "values": {key: grid[0]}, "status": "completed", "score": 0.5,
              "val": {"mse": float("inf")}, "test": {}, "run": name, "error": None}
    runs.write_json(folder / "summary.json", {"name": name, "trials": [record]})
    meta, records = read_records(folder)
    assert meta["name"] == name and same(records[0].values, record["values"])


def test_cli_name_that_looks_like_a_number_reads_back(write_config, tmp_path: Path) -> None:
    """`rnnlab config base.yaml --name 1e3` prints the config a run saves; that text is a config
    whose name is still the string '1e3' (it used to read back as 1000.0 and be refused)."""
    runner = CliRunner()
    printed = runner.invoke(app, ["config", str(write_config()), "--name", "1e3"])
    assert printed.exit_code == 0, printed.output
    saved = tmp_path / "config.yaml"
    saved.write_text(printed.stdout)
    again = runner.invoke(app, ["config", str(saved)])
    assert again.exit_code == 0, again.output
    assert read_yaml(saved)["name"] == "1e3"
