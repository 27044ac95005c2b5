"""Looking across runs: `rnnlab diff RUN_A RUN_B` and `rnnlab compare RUN... --plot [FILE]`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rnnlab
from rnnlab.cli import app

from .conftest import SINE_TINY

PNG = b"\x89PNG\r\n\x1a\n"


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two runs whose configs differ only in train.lr (2 epochs each), and a third with 3 epochs."""
    runs_dir = tmp_path_factory.mktemp("across") / "runs"
    a = rnnlab.train(SINE_TINY, overrides={"train.epochs": 2}, runs_dir=runs_dir)
    b = rnnlab.train(SINE_TINY, overrides={"train.epochs": 2, "train.lr": 0.02}, runs_dir=runs_dir)
    c = rnnlab.train(SINE_TINY, runs_dir=runs_dir, name="third")
    return runs_dir, a.path, b.path, c.path


def test_diff_shows_only_the_key_that_differs_and_both_values(pair) -> None:
    _, a, b, _ = pair
    result = cli("diff", str(a), str(b), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["config"] == {"train.lr": [0.01, 0.02]}
    assert data["a"] == str(a) and data["b"] == str(b) and data["metric"] == "mse"
    summary_a, summary_b = (rnnlab.load_run(p).summary for p in (a, b))
    assert data["metrics"]["test mse"] == [summary_a["test"]["mse"], summary_b["test"]["mse"]]
    assert data["metrics"]["val mse"] == [summary_a["best_val"]["mse"], summary_b["best_val"]["mse"]]


def test_diff_table_lists_no_equal_key(pair) -> None:
    runs_dir, a, b, _ = pair
    result = cli("diff", a.name, b.name, "--runs-dir", str(runs_dir))  # run ids in --runs-dir
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1 key(s) differ" in out and "train.lr" in out and "0.02" in out
    for equal in ("train.epochs", "model.hidden_size", "task.name", "train.batch_size", "train.seed"):
        assert equal not in out
    assert "test mse" in out and "val mse" in out and "B - A" in out


def test_diff_of_identical_configs_and_errors(pair, tmp_path) -> None:
    _, a, _, c = pair
    same = cli("diff", str(a), str(a), "--json")
    assert json.loads(same.output)["config"] == {}
    assert json.loads(cli("diff", str(a), str(c), "--json").output)["config"] == {"train.epochs": [2, 3]}
    missing = cli("diff", str(a), str(tmp_path / "nope"))
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [f"error: {tmp_path / 'nope'}: run directory not found"]


def test_compare_plot_writes_one_figure_with_one_line_per_run(pair, tmp_path) -> None:
    _, a, b, c = pair
    out = tmp_path / "figs" / "curves.png"
    result = cli("compare", str(a), str(b), str(c), "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out)
    assert out.read_bytes().startswith(PNG)
    from rnnlab.analysis.overlay import overlay_figure, read_curves

    curves = read_curves([a, b, c], ["a", "b", "c"])
    fig = overlay_figure(curves)
    for ax in fig.axes:
        assert len(ax.get_lines()) == 3  # one line per run in each panel
    assert [len(line.get_xdata()) for line in fig.axes[0].get_lines()] == [2, 2, 3]
    assert list(fig.axes[1].get_lines()[2].get_ydata()) == [r["val_mse"] for r in rnnlab.load_run(c).history]


def test_compare_plot_default_file_and_no_overwrite_without_force(pair, tmp_path, monkeypatch) -> None:
    _, a, b, _ = pair
    monkeypatch.chdir(tmp_path)
    first = cli("compare", "--plot", str(a), str(b))  # --plot before the runs: the default file
    assert first.exit_code == 0, first.output
    written = tmp_path / "compare.png"
    assert first.output.strip().splitlines()[-1] == "compare.png" and written.read_bytes().startswith(PNG)
    written.write_bytes(b"mine")
    again = cli("compare", str(a), str(b), "--plot")
    assert again.exit_code == 2 and "already exists; give --force" in again.output
    assert written.read_bytes() == b"mine"  # refused: untouched
    forced = cli("compare", str(a), str(b), "--plot", "--force")
    assert forced.exit_code == 0 and written.read_bytes().startswith(PNG)


def test_compare_plot_never_writes_inside_a_run(pair) -> None:
    _, a, b, _ = pair
    before = sorted(p.relative_to(a) for p in a.rglob("*"))
    for target in (a / "curves.png", a / "plots" / "curves.png", b / "x.svg"):
        result = cli("compare", str(a), str(b), "--plot", str(target), "--force")
        assert result.exit_code == 2 and "inside the run directory" in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.relative_to(a) for p in a.rglob("*")) == before


def test_a_figure_file_without_plot_or_a_bad_name_is_one_line(pair, tmp_path) -> None:
    _, a, b, _ = pair
    hint = cli("compare", str(a), str(b), str(tmp_path / "c.png"))
    assert hint.exit_code == 2 and f"--plot {tmp_path / 'c.png'}" in hint.output
    assert cli("compare", str(a), str(b), "--force").exit_code == 2
    two = cli("compare", str(a), str(b), "--plot", str(tmp_path / "x.png"), str(tmp_path / "y.png"))
    assert two.exit_code == 2 and "one figure file" in two.output
    assert not any(Path(tmp_path).glob("*.png"))
