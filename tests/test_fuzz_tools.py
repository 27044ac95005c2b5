"""The fuzzer's tool-command cases (``tests/fuzz_tools.py``) with a short budget: ``generate``,
``config`` (and its output read back), ``check`` with plugins that fail or exit, sweep files with
hostile numbers. Exit 0, or one line and exit 2/3; never a traceback; nothing that existed changed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import fuzz_tools, fuzzing
from .test_fuzz import train_tiny

SHORT = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("fuzz_tools"), fuzzing.BASE, "a")


def one_case(finished: Path, command: str, case: dict, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        run = root / "runs" / finished.name
        shutil.copytree(finished, run)
        assert fuzz_tools.run_case(command, case, root, run, data)


@SHORT
@given(st.sampled_from(["generate", "config", "check"]).flatmap(
    lambda c: st.tuples(st.just(c), fuzz_tools.tool_case(c))), st.data())
def test_tool_commands_never_traceback_or_change(finished: Path, command_case, data) -> None:
    one_case(finished, *command_case, data)


@settings(SHORT, max_examples=8)
@given(fuzz_tools.tool_case("sweep", refused_only=True), st.data())
def test_generated_sweep_files_refuse_in_one_line(finished: Path, case, data) -> None:
    """Refused sweep files only here (a valid one runs a trial: ``benchmarks/fuzz.py --sweeps``)."""
    one_case(finished, "sweep", case, data)
