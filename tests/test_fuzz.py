"""The fuzzer of ``tests/fuzzing.py`` with a short budget (``benchmarks/fuzz.py`` runs it long):
generated configs and ``--set`` overrides for ``train``, mutated run files for ``eval``, ``runs``,
``show``, ``compare`` and ``predict``. Exit 0, or one line and exit 2/3; never a traceback;
nothing that existed changed."""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run

from . import fuzzing

SHORT = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def train_tiny(folder: Path, cfg: dict, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return train_run(load_experiment(path), folder / "runs", Reporter(quiet=True))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two finished sine runs and a finished sentiment run (the built-in tiny set)."""
    folder = tmp_path_factory.mktemp("fuzz")
    a = train_tiny(folder, fuzzing.BASE, "a")
    b = train_tiny(folder, fuzzing.BASE, "b")
    s = train_tiny(folder, {"task": {"name": "sentiment"}, "model": {"name": "gru", "hidden_size": 4},
                            "train": {"epochs": 1, "steps_per_epoch": 1, "threads": 1},
                            "logging": {"plots": False}}, "s")
    return a, b, s


def new_run_only(existing: set[str]) -> "fuzzing.Callable[[str], bool]":
    return lambda path: Path(path).parts[0] not in existing


@SHORT
@given(fuzzing.configs())
def test_generated_configs_train_or_refuse_in_one_line(finished, case) -> None:
    text, overrides = case
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        runs_dir = root / "runs"
        shutil.copytree(finished[0], runs_dir / finished[0].name)
        config = root / "c.yaml"
        config.write_bytes(text.encode("utf-8", "surrogatepass"))
        existing = {p.name for p in runs_dir.iterdir()}
        args = ["train", str(config), "--runs-dir", str(runs_dir), "-q",
                *[a for o in overrides for a in ("--set", o)]]
        result = fuzzing.check(args, runs_dir, new_run_only(existing), budget=True)
        if result.exit_code == 2:  # refused: nothing new at all
            assert {p.name for p in runs_dir.iterdir()} == existing, result.output


@SHORT
@given(st.sampled_from(fuzzing.READ_ONLY), st.integers(0, 2**32 - 1))
def test_mutated_run_files_never_traceback_or_change(finished, command: str, seed: int) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = Path(folder) / "runs"
        run = runs_dir / finished[0].name
        other = runs_dir / (finished[1].name + "-other")
        shutil.copytree(finished[0], run)
        shutil.copytree(finished[1], other)
        sentiment = runs_dir / finished[2].name
        shutil.copytree(finished[2], sentiment)
        kind = fuzzing.mutate_run(sentiment if command == "predict" else run, other, rng)
        fuzzing.check(fuzzing.read_only_args(command, run, other, sentiment, rng), runs_dir)
        assert kind  # the mutation applied is part of the case (hypothesis shows the seed)
