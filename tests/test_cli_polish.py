"""Command-line polish: --version, -h, shell completion, `rnnlab runs` at 80 columns and piped,
the progress bar's ETA on every epoch."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

import rnnlab
from rnnlab.cli import app
from rnnlab.cli import completion as complete

from .conftest import REPO, SINE_TINY

LONG_IDS = ("20261202-171021_sine_families_sweep/20261202-171103_t002_hidden_size-8_lr-0.001",
            "20261202-171021_sine_families_sweep/20261202-171029_t001_hidden_size-4_lr-0.01",
            "20261202-170000_lstm_sine")


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


# ----------------------------------------------------------------------------- --version, -h


def test_version_comes_from_the_package_metadata() -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.output == f"rnnlab {version('rnnlab')}\n"


def test_dash_h_is_help_on_every_command() -> None:
    group = typer.main.get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    assert {"train", "eval", "runs", "compare", "diff", "sweep", "list"} <= set(names)
    assert cli("-h").output == cli("--help").output and cli("-h").exit_code == 0
    for name in names:
        short, long = cli(name, "-h"), cli(name, "--help")
        assert short.exit_code == 0 and short.output == long.output, name
        usage = next(line for line in short.output.splitlines() if "Usage:" in line)
        assert f" {name} [OPTIONS]" in usage


def test_the_cli_imports_no_pandas_matplotlib_or_torch() -> None:
    code = ("import sys, rnnlab.cli; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


# ----------------------------------------------------------------------------- completion


@pytest.fixture
def tree(tmp_path: Path, monkeypatch) -> Path:
    """Folders as completion sees them: runs (a config.yaml), a sweep with trial runs, configs."""
    monkeypatch.chdir(tmp_path)
    for run_id in LONG_IDS:
        (tmp_path / "runs" / run_id / "checkpoints").mkdir(parents=True)
        (tmp_path / "runs" / run_id / "config.yaml").write_text("name: x\n")
    (tmp_path / "runs" / "20261202-171021_sine_families_sweep" / "sweep.yaml").write_text("name: s\n")
    (tmp_path / "runs" / "notes").mkdir()
    (tmp_path / "configs" / "more").mkdir(parents=True)
    for name in ("lstm.yaml", "gru.yml", "README.md", ".hidden.yaml"):
        (tmp_path / "configs" / name).write_text("")
    return tmp_path


def ctx(**params):
    return SimpleNamespace(params=params)


def test_completion_markers_match_the_packages_file_names() -> None:
    from rnnlab.rundir import files as runs
    from rnnlab.sweeps.sweepdir import BACKENDS, SWEEP_FILE

    assert complete.RUN_MARKER == runs.CONFIG and complete.SWEEP_MARKER == SWEEP_FILE
    assert complete.BACKENDS == BACKENDS


def test_registry_names_and_choices_complete() -> None:
    names = dict(complete.registry_names(ctx(), ""))
    assert {"lstm", "gru", "sine", "charlm", "adamw", "cosine"} <= set(names)
    assert names["lstm"].startswith("model: ") and names["sine"].startswith("task: ")
    assert [n for n, _ in complete.registry_names(ctx(), "ls")] == ["lstm"]
    tasks = {n for n, _ in complete.task_names(ctx(), "")}
    assert "sine" in tasks and "lstm" not in tasks
    assert {"lstm", "sine"} <= {n for n, _ in complete.models_and_tasks(ctx(), "")}
    assert "adamw" not in {n for n, _ in complete.models_and_tasks(ctx(), "")}
    assert complete.devices(ctx(), "c") == ["cpu", "cuda"]
    assert complete.checkpoints(ctx(), "") == ["best", "last"]
    assert complete.statuses(ctx(), "d") == ["diverged"]
    assert "local" in complete.backends(ctx(), "")


def test_run_directories_and_ids_complete(tree: Path) -> None:
    paths = complete.run_dirs(ctx(), "")
    assert [p for p in paths if p.startswith("runs/2026")] == [f"runs/{i}" for i in LONG_IDS]
    assert "runs/" in paths and not any("checkpoints" in p for p in paths)
    assert complete.run_dirs(ctx(), "runs/") == [
        "runs/20261202-170000_lstm_sine", "runs/20261202-171021_sine_families_sweep/", "runs/notes/"]
    assert complete.run_dirs(ctx(), "runs/20261202-171021_sine_families_sweep/20261202-17102") == [
        "runs/20261202-171021_sine_families_sweep/20261202-171029_t001_hidden_size-4_lr-0.01"]
    assert complete.run_ids(ctx(), "20261202-17") == list(LONG_IDS)
    elsewhere = tree / "elsewhere"
    shutil.copytree(tree / "runs", elsewhere)
    assert complete.run_ids(ctx(runs_dir=elsewhere), "20261202-1700") == ["20261202-170000_lstm_sine"]
    assert str(elsewhere / LONG_IDS[2]) in complete.run_dirs(ctx(runs_dir=elsewhere), "")
    sweeps = complete.runs_and_sweeps(ctx(), "")
    assert "runs/20261202-171021_sine_families_sweep" in sweeps
    assert complete.run_dirs(ctx(runs_dir=tree / "missing"), "x") == []


def test_config_files_complete(tree: Path) -> None:
    assert complete.config_files(ctx(), "") == ["configs/", "runs/"]
    assert complete.config_files(ctx(), "configs/") == [
        "configs/gru.yml", "configs/lstm.yaml", "configs/more/"]
    assert complete.config_files(ctx(), "configs/l") == ["configs/lstm.yaml"]
    assert complete.config_files(ctx(), "configs/.") == ["configs/.hidden.yaml"]
    assert complete.config_files(ctx(), f"{tree}/configs/g") == [f"{tree}/configs/gru.yml"]


def _complete(words: str, cwd: Path) -> list[str]:
    """What bash would be offered: Typer's `_RNNLAB_COMPLETE` protocol in a real process."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {**os.environ, "_RNNLAB_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword),
           "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "rnnlab"], capture_output=True, text=True, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_completion_through_the_shell_protocol(tree: Path) -> None:
    offered = _complete("rnnlab eval runs/20261202-1710", tree)
    assert offered == ["runs/20261202-171021_sine_families_sweep/"]
    assert _complete("rnnlab train --resume 20261202-17000", tree) == ["20261202-170000_lstm_sine"]
    assert _complete("rnnlab train configs/ls", tree) == ["configs/lstm.yaml"]
    assert _complete("rnnlab eval x --checkpoint ", tree) == ["best", "last"]


# ----------------------------------------------------------------------------- rnnlab runs


@pytest.fixture(scope="module")
def listed(tmp_path_factory) -> Path:
    """A runs folder with long ids (a trained run copied under them)."""
    folder = tmp_path_factory.mktemp("listing")
    run = rnnlab.train(SINE_TINY, overrides={"train.epochs": 1}, runs_dir=folder / "trained")
    for run_id in LONG_IDS:
        shutil.copytree(run.path, folder / "runs" / run_id)
    return folder / "runs"


def test_runs_at_80_columns_keeps_every_id_whole(listed: Path) -> None:
    result = cli("runs", str(listed), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.output
    for run_id in LONG_IDS:
        assert run_id in lines  # alone on its line: whole, and copyable
        details = lines[lines.index(run_id) + 1]
        assert details.startswith("    sine") and "completed" in details and "test mse" in details


def test_runs_piped_is_one_plain_line_per_run_as_wide_as_its_content(listed: Path) -> None:
    result = cli("runs", str(listed), env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"3 run(s) in {listed}" and lines[1].split()[:3] == ["id", "task", "model"]
    assert len(lines) == 5 and all(line == line.rstrip() for line in lines)
    assert not any(ch in result.output for ch in "┃│━─┏")
    for run_id in LONG_IDS:
        (line,) = [line for line in lines if line.startswith(run_id + " ")]
        assert "completed" in line
    assert f"{LONG_IDS[0]}  sine  lstm" in result.output  # the id column is as wide as the longest id


def test_runs_on_a_terminal_is_a_table_when_it_fits(listed: Path, capsys, monkeypatch) -> None:
    from rnnlab.analysis.compare import list_runs
    from rnnlab.cli.runlist import print_runs

    infos = list_runs(listed)
    monkeypatch.setenv("COLUMNS", "200")
    print_runs(infos, "3 runs", terminal=True)
    wide = capsys.readouterr().out
    assert "┃" in wide and all(run_id in wide for run_id in LONG_IDS)
    monkeypatch.setenv("COLUMNS", "80")
    print_runs(infos, "3 runs", terminal=True)
    narrow = capsys.readouterr().out.splitlines()
    assert all(run_id in narrow for run_id in LONG_IDS) and max(map(len, narrow)) <= 80


# ----------------------------------------------------------------------------- progress ETA


def test_the_eta_restarts_with_every_epoch() -> None:
    from rnnlab.common.console import RichReporter

    clock = [0.0]
    reporter = RichReporter(stream=io.StringIO())
    reporter.console.get_time = lambda: clock[0]
    halfway = []
    for epoch in (1, 2, 3):
        reporter.epoch_start(epoch, 3, 100)
        for step in range(10, 101, 10):
            clock[0] += 1.0  # 10 steps a second
            reporter.step(step, 0.5, step / 10)
            if step == 50:
                halfway.append(reporter.progress.tasks[0].time_remaining)
        clock[0] += 2.0  # validation between epochs
    reporter.close()
    assert halfway == [pytest.approx(5.0)] * 3  # 50 steps left at 10 steps/s, every epoch
