"""The suite's share of the fuzzer over every command that reads a run or a file rnnlab wrote
(``tests/fuzz_surface.py``; ``benchmarks/fuzz.py`` runs it long): a few cases of each of eval,
predict, generate, forecast, export, track, runs, show, compare, diff and plot on copies of small
runs, one of rnnlab's own output files damaged. Exit 0, or one ``error:`` line and exit 2/3; never a
traceback; after a refusal nothing that existed changed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from . import fuzz_surface, fuzzing


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fuzz_surface.build_runs(tmp_path_factory.mktemp("fuzz_surface"))


@pytest.mark.parametrize("command", fuzz_surface.COMMANDS)
def test_every_command_on_damaged_runs_refuses_in_one_line(base, command: str, tmp_path: Path) -> None:
    for i in range(3):
        root = tmp_path / str(i)
        root.mkdir()
        fuzz_surface.run_case(command, base, root, random.Random(f"suite-{command}-{i}"))
    assert sum(fuzzing.OUTCOMES[(command, k)] for k in ("ok", "refused")) >= 3


def test_check_fails_on_a_traceback_and_on_a_changed_file(base, tmp_path: Path, monkeypatch) -> None:
    """The property itself can fail: a command that raises, or one that refuses after writing."""
    import typer

    victim = tmp_path / "input.txt"
    victim.write_text("mine")

    def raises() -> None:
        raise RuntimeError("boom")

    def clobbers() -> None:
        victim.write_text("changed")
        typer.echo("error: refused after writing", err=True)
        raise typer.Exit(2)

    for body, kind in ((raises, "traceback"), (clobbers, "violation")):
        app = typer.Typer()
        app.command()(body)
        monkeypatch.setattr(fuzzing, "app", app)
        with pytest.raises(AssertionError, match=kind):
            fuzzing.check([], tmp_path, command="selftest")
    assert fuzzing.OUTCOMES[("selftest", "traceback")] >= 1
    assert fuzzing.OUTCOMES[("selftest", "violation")] >= 1
