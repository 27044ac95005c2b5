"""Comparisons over seeds: sweep ``repeats``/``seeds`` (mean ± std and n per configuration) and
``rnnlab compare`` of two groups of runs (difference of means with a 95 % Welch t interval)."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rnnlab.analysis.compare import compare_groups
from rnnlab.cli import app
from rnnlab.common.stats import t_quantile, welch_interval
from rnnlab.errors import ConfigError
from rnnlab.rundir import files as runs
from rnnlab.sweeps.results import Ranking, TrialRecord, grouped, groups_csv, ranked_table, write_plots
from rnnlab.sweeps.spec import expand
from rnnlab.sweeps.sweepfile import load_sweep

from .conftest import SINE_TINY

runner = CliRunner()


def write_sweep(folder: Path, body: dict[str, Any]) -> Path:
    path = folder / "rep.yaml"
    path.write_text(yaml.safe_dump({"base": SINE_TINY, **body}, sort_keys=False))
    return path


def test_repeats_run_each_configuration_once_per_seed(tmp_path: Path) -> None:
    base = {**SINE_TINY, "train": {**SINE_TINY["train"], "seed": 5}}
    path = tmp_path / "rep.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": {"model.name": ["rnn", "gru"]}, "repeats": 3}))
    trials = expand(load_sweep(path))
    assert [(t.values["model.name"], t.config["train"]["seed"]) for t in trials] == [
        ("rnn", 5), ("rnn", 6), ("rnn", 7), ("gru", 5), ("gru", 6), ("gru", 7)]
    assert load_sweep(path).keys == ["model.name"]  # the seed is not a swept key
    listed = expand(load_sweep(write_sweep(tmp_path, {"grid": {"model.name": ["rnn"]}, "seeds": [3, 9]})))
    assert [t.config["train"]["seed"] for t in listed] == [3, 9]
    assert listed[1].run_name() == "t002_name-rnn_seed-9"


@pytest.mark.parametrize("body,message", [
    ({"repeats": 0}, "repeats: must be an integer >= 1"),
    ({"repeats": 2, "seeds": [1, 2]}, "seeds: give repeats: N or a seeds: list, not both"),
    ({"seeds": [1, 1]}, "seeds: a seed is listed twice"),
    ({"seeds": "1,2"}, "seeds: must be a non-empty list of integers"),
    ({"repeats": 2, "grid": {"train.seed": [0, 1]}}, "repeats: train.seed is also swept"),
])
def test_bad_repeats_are_one_line_errors(tmp_path: Path, body: dict[str, Any], message: str) -> None:
    body = {"grid": {"model.name": ["rnn"]}, **body}
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path, body))


def records() -> list[TrialRecord]:
    scores = {("rnn", 0): 0.5, ("rnn", 1): 0.7, ("rnn", 2): 0.9, ("gru", 0): 0.2, ("gru", 1): 0.4,
              ("gru", 2): None}  # one gru trial diverged
    out = []
    for i, ((name, seed), mse) in enumerate(scores.items(), 1):
        metrics = {} if mse is None else {"mse": mse, "mae": mse / 2}
        out.append(TrialRecord(f"t00{i}", {"model.name": name, "train.seed": seed},
                               status="diverged" if mse is None else "completed", val=metrics,
                               test=metrics, metric="mse", mode="min", seconds=float(i)))
    return out


def test_configurations_are_ranked_by_the_mean_with_std_and_n(tmp_path: Path) -> None:
    recs = records()
    ranking = Ranking(None, None, "val", "s.yaml")
    ranking.apply(recs)
    groups = grouped(recs, ["model.name"], ranking)
    assert [(g.values["model.name"], g.rank, g.n) for g in groups] == [("gru", 1, 2), ("rnn", 2, 3)]
    assert groups[0].mean == pytest.approx(0.3)
    assert groups[0].std == pytest.approx(statistics.stdev([0.2, 0.4]))
    assert groups[1].std == pytest.approx(0.2)  # sample std of 0.5, 0.7, 0.9
    rows = list(csv.DictReader(groups_csv(groups, ["model.name"], recs).splitlines()))
    assert rows[0]["model.name"] == "gru" and rows[0]["n"] == "2" and rows[0]["trials"] == "3"
    assert float(rows[1]["val_mse_mean"]) == pytest.approx(0.7)
    assert float(rows[1]["test_mae_std"]) == pytest.approx(0.1)
    assert rows[0]["seeds"] == "0 1 2" and rows[0]["statuses"] == "2 completed 1 diverged"
    table = ranked_table(recs, ["model.name"], ranking, "rep")
    assert [c.header for c in table.columns][:4] == ["rank", "model.name", "n", "val mse (mean ± std)"]
    cells = list(table.columns[3].cells)
    assert cells[0] == "0.3 ± 0.1414" and list(table.columns[2].cells) == ["2/3", "3/3"]
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"model.name": ["rnn", "gru"]}, "repeats": 3}))
    [plot] = write_plots(sweep, recs, tmp_path / "plots", ranking)
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_repeated_sweep_end_to_end(tmp_path: Path) -> None:
    base = {**SINE_TINY, "train": {**SINE_TINY["train"], "epochs": 1}}
    path = tmp_path / "rep.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": {"model.hidden_size": [4, 6]}, "repeats": 2}))
    result = runner.invoke(app, ["sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--workers", "2"])
    assert result.exit_code == 0, result.output
    [sweep_dir] = list((tmp_path / "runs").glob("*_rep"))
    summary = json.loads((sweep_dir / "summary.json").read_text())
    configs = summary["configurations"]
    assert sorted(c["values"]["model.hidden_size"] for c in configs) == [4, 6]
    assert all(c["n"] == 2 and c["seeds"] == [0, 1] and c["std"] is not None for c in configs)
    assert configs[0]["mean"] <= configs[1]["mean"]  # mse: lower first
    rows = list(csv.DictReader((sweep_dir / "summary.csv").read_text().splitlines()))
    assert [r["rank"] for r in rows] == ["1", "2"] and {r["n"] for r in rows} == {"2"}
    assert "mean ± std over seeds" in result.output
    # the two configurations as two groups of runs
    by = runner.invoke(app, ["compare", str(sweep_dir), "--by", "model.hidden_size=4,6", "--json"])
    assert by.exit_code == 0, by.output
    out = json.loads(by.stdout)
    assert out["metrics"]["test mse"]["a"]["n"] == 2 and out["method"].startswith("Welch t interval")


def run_dir(root: Path, name: str, accuracy: float, status: str = "completed") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / runs.CONFIG).write_text(yaml.safe_dump({"model": {"name": name.rstrip("0123456789")}}))
    summary = {"status": status, "metric": "accuracy", "mode": "max", "test": {"accuracy": accuracy},
               "best_val": {"accuracy": accuracy}}
    (d / runs.SUMMARY).write_text(json.dumps(summary))
    return d


def test_welch_interval_against_a_hand_computation(tmp_path: Path) -> None:
    a, b = [0.981, 0.984, 0.979, 0.986], [0.975, 0.978, 0.977]
    # by hand: means, variances of the means, Welch-Satterthwaite df, t quantile
    ma, mb = sum(a) / 4, sum(b) / 3
    va = sum((x - ma) ** 2 for x in a) / 3 / 4
    vb = sum((x - mb) ** 2 for x in b) / 2 / 3
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    assert df == pytest.approx(4.5369, abs=1e-4)  # 10.2045e-12 / 2.24923e-12
    # the quantile: the tables' t_{0.975} at whole df, and between them at df 4.54
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.975, 5) == pytest.approx(2.5706, abs=1e-4)
    t = t_quantile(0.975, df)
    assert 2.5706 < t < 2.7764
    d = welch_interval(a, b)
    assert d is not None and d.df == pytest.approx(df)
    assert d.diff == pytest.approx(ma - mb)
    half = t * math.sqrt(va + vb)
    assert (d.low, d.high) == pytest.approx((ma - mb - half, ma - mb + half), abs=1e-9)
    assert d.excludes_zero
    assert welch_interval([1.0], b) is None  # one run: no spread to judge noise by

    for i, x in enumerate(a):
        run_dir(tmp_path / "a", f"lstm{i}", x)
    for i, x in enumerate(b):
        run_dir(tmp_path / "b", f"gru{i}", x)
    run_dir(tmp_path / "b", "gru9", 0.1, status="diverged")
    comp = compare_groups([tmp_path / "a"], [tmp_path / "b"])
    assert comp.rows["test accuracy"].low == pytest.approx(d.low)
    assert comp.verdict("test accuracy") == "A better" and len(comp.skipped) == 1
    noisy = compare_groups([tmp_path / "a" / "lstm0", tmp_path / "a" / "lstm2"],
                           [tmp_path / "b" / "gru0", tmp_path / "b" / "gru1"])
    assert noisy.verdict("test accuracy") == "no difference shown (interval contains 0)"


def test_compare_groups_cli(tmp_path: Path) -> None:
    for i, x in enumerate([0.97, 0.98, 0.99]):
        run_dir(tmp_path / "runs", f"lstm{i}", x)
        run_dir(tmp_path / "runs", f"gru{i}", x - 0.001)
    root = tmp_path / "runs"
    args = ["compare"]
    for i in range(3):
        args += ["-a", str(root / f"lstm{i}"), "-b", str(root / f"gru{i}")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "95 % Welch t interval" in result.output and "no difference shown" in result.output
    by = runner.invoke(app, ["compare", str(root), "--by", "model.name=lstm,gru", "--json"])
    out = json.loads(by.stdout)["metrics"]["test accuracy"]
    assert out["a"]["n"] == 3 and out["difference"] == pytest.approx(0.001)
    for args, message in (
            (["compare", str(root), "--by", "model.name=lstm"], "error: --by: expected KEY=A,B"),
            (["compare", str(root), "--by", "model.name=lstm,rnn"], "no run has model.name=rnn"),
            (["compare", "-a", str(root / "lstm0")], "error: --group-a: give both")):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and message in bad.output, bad.output
