from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs

from .conftest import SINE_TINY

PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def train(path: Path, runs_dir: Path) -> Path:
    return train_run(load_experiment(path), runs_dir, Reporter(quiet=True))


def pngs(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / runs.PLOTS).glob("*.png"))}


@pytest.mark.parametrize("extra,figures", [
    ({"task": {"mode": "window"}}, {"learning_curves.png", "forecast.png"}),
    ({"task": {"mode": "seq2seq", "seq_len": 40, "stride": 20}}, {"learning_curves.png", "forecast.png"}),
    ({"task": {"mode": "rollout", "window": 8, "horizon": 4}},
     {"learning_curves.png", "forecast.png", "rollout.png"}),
])
def test_every_sine_mode_writes_its_plots_and_plot_redraws_them(write_config, runs_dir: Path,
                                                                 extra, figures) -> None:
    run = train(write_config({**extra, "train": {"epochs": 2}, "logging": {"plots": True}}), runs_dir)
    written = pngs(run)
    assert set(written) == figures
    assert all(data[:8] == PNG and len(data) > 10_000 for data in written.values())  # real figures
    for path in (run / runs.PLOTS).iterdir():
        path.unlink()
    result = runner.invoke(app, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    assert set(pngs(run)) == figures
    assert {Path(line).name for line in result.stdout.split()} == figures


def test_plot_draws_a_run_trained_without_plots(write_config, runs_dir: Path) -> None:
    run = train(write_config(), runs_dir)  # SINE_TINY: logging.plots false
    assert pngs(run) == {}
    assert runner.invoke(app, ["plot", str(run)]).exit_code == 0
    assert set(pngs(run)) == {"learning_curves.png", "forecast.png"}


def test_show_prints_summary_config_last_metrics_and_plots(write_config, runs_dir: Path) -> None:
    run = train(write_config({"logging": {"plots": True}}), runs_dir)
    result = runner.invoke(app, ["show", str(run)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    summary = json.loads((run / runs.SUMMARY).read_text())
    last = runs.read_jsonl(run / runs.METRICS)[-1]
    assert f"run {run}" in out and "status completed" in out
    assert f"best_epoch {summary['best_epoch']}" in out and "precision fp32" in out
    assert "test " in out and "mse=" in out
    assert f"  hidden_size: {SINE_TINY['model']['hidden_size']}" in out  # the config, verbatim
    assert "last epoch (metrics.jsonl, 3 epoch(s))" in out and f"  epoch {last['epoch']}" in out
    assert "plots (2)" in out and str(run / "plots" / "learning_curves.png") in out


def test_show_and_plot_errors_are_one_line(tmp_path: Path, write_config, runs_dir: Path) -> None:
    run = train(write_config(), runs_dir)
    (run / "checkpoints" / "best.pt").unlink()
    cases = [(["show", str(tmp_path / "nope")], "run directory not found"),
             (["plot", str(run)], "best.pt: checkpoint not found")]
    for args, fragment in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and fragment in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
