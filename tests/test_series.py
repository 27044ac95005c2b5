"""The series task: reading CSVs (errors, fills, gaps), splits, the scaler, windows, baselines,
the models on it, eval == summary, and ``rnnlab forecast``."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.config.loading import build_experiment
from rnnlab.errors import ConfigError, DataError
from rnnlab.models import build_model
from rnnlab.tasks.series_files import Frequency
from rnnlab.training.build import build_task
from rnnlab.training.evaluation import evaluate, evaluate_run

from .conftest import deep_merge

runner = CliRunner()
START = datetime(2020, 1, 1)


def write_csv(path: Path, columns: dict[str, list[Any]], times: list[Any] | None = None,
              time_column: str = "date", sep: str = ",") -> Path:
    names = ([time_column] if times is not None else []) + list(columns)
    lines = [sep.join(names)]
    n = len(next(iter(columns.values())))
    for i in range(n):
        cells = ([str(times[i])] if times is not None else []) + [str(columns[c][i]) for c in columns]
        lines.append(sep.join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def hourly(n: int, start: datetime = START) -> list[str]:
    return [(start + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]


def toy(tmp_path: Path, n: int = 300, name: str = "toy.csv") -> Path:
    t = np.arange(n)
    a = (10 + np.sin(2 * np.pi * t / 24)).round(4).tolist()
    b = (100 + 0.1 * t).round(4).tolist()
    return write_csv(tmp_path / name, {"a": a, "b": b, "label": ["x"] * n}, hourly(n))


def experiment(path: Path, task: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
               model: dict[str, Any] | None = None, **extra: Any) -> Any:
    cfg = {"task": {"name": "series", "lookback": 24, "horizon": 6, **(task or {})},
           "data": {"path": str(path), "time_column": "date", **(data or {})},
           "model": model or {"name": "linear"},
           "train": {"epochs": 1, "batch_size": 64, "lr": 0.01, "seed": 0, "threads": 1},
           "logging": {"plots": False}}
    return build_experiment(deep_merge(cfg, extra))


def task_for(path: Path, **kw: Any) -> Any:
    """The task, with the experiment it was built from beside it (``.experiment``: the model's options)."""
    exp = experiment(path, **kw)
    task = build_task(exp, torch.device("cpu"))
    task.experiment = exp
    return task


# ----------------------------------------------------------------------------- reading


def test_numeric_columns_by_default_and_ms_shorthand(tmp_path: Path) -> None:
    path = toy(tmp_path)
    t = task_for(path)
    assert (t.inputs, t.targets) == (["a", "b"], ["a", "b"])  # 'label' is not numeric: not read
    assert t.freq.seconds == 3600 and t.period == 24
    ms = task_for(path, data={"inputs": "MS"})
    assert (ms.inputs, ms.targets, ms.target_idx) == (["a", "b"], ["b"], [1])
    s = task_for(path, data={"inputs": "S", "targets": "a"})
    assert (s.inputs, s.targets) == (["a"], ["a"])


def cell(r: int, col: int, value: str):
    """An edit: row ``r`` (1-based after the header), column ``col`` (0 = date) set to ``value``."""
    def edit(rows: list[str]) -> None:
        cells = rows[r].split(",")
        cells[col] = value
        rows[r] = ",".join(cells)
    return edit


@pytest.mark.parametrize("edit,fragments", [
    (cell(5, 1, ""), ["row 5 (line 6)", "'a'", "missing value", "data.fill"]),
    (cell(7, 2, "abc"), ["row 7 (line 8)", "'b'", "not a number"]),
    (lambda rows: rows.__setitem__(9, rows[8]), ["row 9 (line 10)", "'date'", "duplicated timestamp"]),
    (lambda rows: rows.__setitem__(9, rows[3]), ["row 9 (line 10)", "goes backwards"]),
    (lambda rows: rows.__delitem__(12), ["row 12 (line 13)", "gap of 1", "data.fill"]),
    (cell(4, 0, "2020-13-45 00:00:00"), ["row 4 (line 5)", "not a date"]),
])
def test_bad_cells_name_file_row_and_column(tmp_path: Path, edit, fragments) -> None:
    path = toy(tmp_path)
    rows = path.read_text().splitlines()
    edit(rows)
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        task_for(path)
    line = err.value.line()
    assert str(path) in line and "\n" not in line
    for fragment in fragments:
        assert fragment in line


def test_cli_bad_file_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = toy(tmp_path)
    rows = path.read_text().splitlines()
    cell(3, 1, "")(rows)
    path.write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"task": {"name": "series", "lookback": 24, "horizon": 6},
                                   "data": {"path": str(path), "time_column": "date"},
                                   "model": {"name": "linear"}}))
    result = runner.invoke(app, ["train", str(cfg), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    lines = [x for x in result.stderr.splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "row 3" in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_too_short_and_unknown_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="25 rows, fewer than lookback \\+ horizon = 24 \\+ 6"):
        task_for(toy(tmp_path, n=25, name="short.csv"))
    with pytest.raises(DataError, match="the val split .* too short for one window of lookback 24"):
        task_for(toy(tmp_path, n=100), task={"context": "split"})  # the val split has 10 rows
    with pytest.raises(DataError, match="no column 'zz'"):
        task_for(toy(tmp_path), data={"inputs": ["a", "zz"]})
    with pytest.raises(ConfigError, match="data.targets"):
        task_for(toy(tmp_path), data={"inputs": ["a"], "targets": ["b"]})
    with pytest.raises(DataError, match="data.time_column: no column 'when'"):
        task_for(toy(tmp_path), data={"time_column": "when"})


def test_fill_ffill_and_interpolate_cells_and_gaps(tmp_path: Path) -> None:
    times = hourly(8)
    del times[4]  # a gap of one hour after row 4
    a = [1.0, 2.0, "", 4.0, 5.0, 6.0, 7.0]
    path = write_csv(tmp_path / "g.csv", {"a": a}, times)
    from rnnlab.tasks.series_files import read_series

    ff = read_series(path, time_column="date", fill="ffill")
    assert ff.values[:, 0].tolist() == [1, 2, 2, 4, 4, 5, 6, 7] and ff.gap_rows == 1 and ff.filled == 2
    lin = read_series(path, time_column="date", fill="interpolate")
    assert lin.values[:, 0].tolist() == [1, 2, 3, 4, 4.5, 5, 6, 7]
    assert lin.times[4] == START + timedelta(hours=4)


def test_tsv_comments_and_monthly_frequency(tmp_path: Path) -> None:
    from rnnlab.tasks.series_files import infer_frequency, read_series

    months = [f"{1990 + i // 12}-{i % 12 + 1:02d}-01" for i in range(30)]
    path = write_csv(tmp_path / "m.tsv", {"v": list(range(30))}, months, sep="\t")
    path.write_text("# a comment\n" + path.read_text())
    s = read_series(path, time_column="date")
    assert s.freq == Frequency(months=1) and s.freq.default_period() == 12
    assert s.freq.add(s.times[-1], 1) == datetime(1992, 7, 1)
    assert infer_frequency([START + timedelta(minutes=15 * i) for i in range(5)]).rows_per_day() == 96


# ----------------------------------------------------------------------------- splits and scaling


def test_scaler_is_fitted_on_train_rows_only(tmp_path: Path) -> None:
    n = 300
    t = task_for(toy(tmp_path, n))
    a, _ = t.bounds["train"]
    train_end = t.bounds["train"][1]
    assert t.bounds == {"train": (0, 210), "val": (210, 240), "test": (240, 300)}
    np.testing.assert_allclose(t.scaler.shift, t.values[:train_end].mean(axis=0))
    np.testing.assert_allclose(t.scaler.scale, t.values[:train_end].std(axis=0))
    # changing the future changes nothing about the scaler
    path = toy(tmp_path, n, "future.csv")
    rows = path.read_text().splitlines()
    cell(250, 1, "999")(rows)
    path.write_text("\n".join(rows) + "\n")
    t2 = task_for(path)
    np.testing.assert_array_equal(t.scaler.shift, t2.scaler.shift)
    mm = task_for(toy(tmp_path), task={"scaling": "minmax"})
    assert mm.scaled[:train_end].min().item() == pytest.approx(0)
    assert mm.scaled[:train_end].max().item() == pytest.approx(1)


@pytest.mark.parametrize("context", ["previous", "split"])
def test_targets_never_cross_a_split(tmp_path: Path, context: str) -> None:
    t = task_for(toy(tmp_path), task={"context": context})
    for split, (start, stop) in t.bounds.items():
        x_idx, y_idx = t.index[split]
        assert y_idx.min() >= start and y_idx.max() < stop
        lowest = start - 24 if context == "previous" and split != "train" else start
        assert x_idx.min() == lowest
        assert torch.equal(x_idx[:, -1] + 1, y_idx[:, 0])
        assert len(y_idx) == stop - max(lowest + 24, start) - 6 + 1  # every window, one row apart


def test_row_date_and_ett_borders(tmp_path: Path) -> None:
    path = toy(tmp_path)
    rows = task_for(path, task={"split": "rows", "borders": [200, 250]})
    assert rows.bounds == {"train": (0, 200), "val": (200, 250), "test": (250, 300)}
    borders = ["2020-01-09 08:00", "2020-01-11", "2020-01-12"]
    dates = task_for(path, task={"split": "dates", "borders": borders})
    assert dates.bounds == {"train": (0, 200), "val": (200, 240), "test": (240, 264)}
    n = 14500
    big = write_csv(tmp_path / "ett.csv", {"OT": (np.arange(n) % 24).tolist()}, hourly(n))
    ett = task_for(big, task={"split": "ett", "lookback": 96, "horizon": 96})
    assert ett.bounds == {"train": (0, 8640), "val": (8640, 11520), "test": (11520, 14400)}
    assert [len(ett.index[s][0]) for s in ("train", "val", "test")] == [8640 - 191, 2785, 2785]
    with pytest.raises(ConfigError, match="borders"):
        experiment(path, task={"split": "rows"})


# ----------------------------------------------------------------------------- baselines and metrics


def test_baselines_on_a_known_series(tmp_path: Path) -> None:
    n, period = 200, 4
    v = [float(i % period) + 0.5 * i for i in range(n)]  # a ramp plus a 4-step season
    path = write_csv(tmp_path / "k.csv", {"v": v}, hourly(n))
    t = task_for(path, task={"scaling": "none", "lookback": 8, "horizon": 4, "period": period})
    b = t.baselines["test"]
    # last value: the error at step h is the ramp 0.5 h plus the season's change
    x, y = t.gather("test", slice(None))
    last = (y - x[:, -1:, :]).abs().mean().item()
    assert b["last_value"]["mae"] == pytest.approx(last)
    assert b["last_value"]["mae_data"] == pytest.approx(last)
    # seasonal naive, period 4, horizon 4: every forecast is exactly the ramp of one period (2.0) short
    assert b["seasonal_naive"]["mae"] == pytest.approx(2.0)
    assert b["seasonal_naive"]["rmse_data"] == pytest.approx(2.0)
    # the least-squares linear map is exact on ramp + period-4 season (lookback covers two periods)
    assert b["linear"]["mse"] < 1e-6
    train_mean = float(np.mean(v[:t.bounds["train"][1]]))
    assert b["train_mean"]["mae"] == pytest.approx((y - train_mean).abs().mean().item(), rel=1e-6)
    # mase: MAE over the in-sample seasonal-naive MAE (2.0 on the training rows too)
    assert b["seasonal_naive"]["mase"] == pytest.approx(1.0)


def test_every_window_is_scored_and_metrics_are_in_both_units(tmp_path: Path) -> None:
    t = task_for(toy(tmp_path), task={"scaling": "standard"})
    model = build_model(t.experiment.model, t.spec)
    m = evaluate(t, model, "test", 7)  # 7 does not divide the window count
    assert m["windows"] == len(t.index["test"][0]) == 60 - 6 + 1
    pred, y = t.predictions(model.eval(), "test", 7)
    scale = torch.from_numpy(t.scaler.scale).double()
    assert m["mae_data"] == pytest.approx(((pred - y).double().abs() * scale).mean().item(), rel=1e-5)
    assert m["mse"] == pytest.approx((pred - y).double().pow(2).mean().item(), rel=1e-5)
    assert set(t.describe()["baselines"]["test"]) == {"last_value", "seasonal_naive", "train_mean", "linear"}


# ----------------------------------------------------------------------------- models and modes


@pytest.mark.parametrize("model,task,data", [
    ({"name": "segrnn", "hidden_size": 16, "segment": 6}, {}, {}),
    ({"name": "segrnn", "hidden_size": 16, "segment": 8}, {}, {"inputs": "MS"}),
    ({"name": "linear", "decomposition": True, "kernel": 5}, {}, {"inputs": "MS", "targets": "a"}),
    ({"name": "linear", "individual": True}, {}, {}),
    ({"name": "gru", "hidden_size": 8}, {}, {"inputs": "MS"}),
    ({"name": "mlp", "hidden_sizes": [8]}, {}, {}),
    ({"name": "lstm", "hidden_size": 8}, {"mode": "rollout"}, {}),
    ({"name": "seq2seq", "hidden_size": 8}, {"mode": "encoder_decoder"}, {}),
])
def test_models_and_modes_forecast_the_horizon(tmp_path: Path, model, task, data) -> None:
    t = task_for(toy(tmp_path), model=model, task=task, data=data)
    m = build_model(t.experiment.model, t.spec)
    batch = next(iter(t.train_batches(16, torch.Generator().manual_seed(0))))
    assert t.predict(m, batch.x).shape == (16, 6, len(t.targets))
    loss, _ = t.loss(m, batch)
    loss.backward()
    assert math.isfinite(loss.item())


def test_incompatible_modes_are_config_errors(tmp_path: Path) -> None:
    path = toy(tmp_path)
    with pytest.raises(ConfigError, match="encoder_decoder"):
        experiment(path, model={"name": "seq2seq"})
    with pytest.raises(ConfigError, match="all steps at once"):
        experiment(path, model={"name": "segrnn"}, task={"mode": "rollout"})
    with pytest.raises(ConfigError, match="targets must be all the inputs"):
        task_for(path, model={"name": "lstm"}, task={"mode": "rollout"}, data={"inputs": "MS"})
    t = task_for(path, model={"name": "segrnn", "segment": 5})
    with pytest.raises(ConfigError, match="model.segment: 5 must divide the lookback"):
        build_model(t.experiment.model, t.spec)


# ----------------------------------------------------------------------------- runs, eval, forecast


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("series_run")
    path = toy(root, 300)
    cfg = root / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "task": {"name": "series", "lookback": 24, "horizon": 6},
        "data": {"path": str(path), "time_column": "date"},
        "model": {"name": "segrnn", "hidden_size": 16, "segment": 6},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "seed": 0, "threads": 1}}))
    result = runner.invoke(app, ["train", str(cfg), "--runs-dir", str(root / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1]), path


def test_eval_reproduces_the_summary_and_baselines_are_stored(trained) -> None:
    run, _ = trained
    summary = json.loads((run / "summary.json").read_text())
    assert evaluate_run(run) == pytest.approx(summary["test"], rel=1e-6)
    assert summary["data"]["baselines"]["test"]["last_value"]["mse"] > 0
    saved = json.loads((run / "series.json").read_text())
    assert saved["inputs"] == ["a", "b"] and saved["scaler"]["kind"] == "standard"
    assert {p.name for p in (run / "plots").iterdir()} >= {"forecasts.png", "error_by_step.png"}


def test_forecast_continues_timestamps_in_data_units(trained, tmp_path: Path) -> None:
    run, _ = trained
    recent = toy(tmp_path, 40, "recent.csv")  # another file, same columns: 40 hours from START
    out = tmp_path / "fc.csv"
    result = runner.invoke(app, ["forecast", str(run), "--file", str(recent), "--out", str(out),
                                 "--horizon", "9"])
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert rows[0] == "date,a,b" and len(rows) == 10  # 9 > the trained 6: rolled forward
    stamps = [datetime.fromisoformat(r.split(",")[0]) for r in rows[1:]]
    assert stamps == [START + timedelta(hours=40 + k) for k in range(9)]
    b = [float(r.split(",")[2]) for r in rows[1:]]
    assert all(95 < v < 110 for v in b)  # data units (b is about 100..104), not standardised
    assert out.with_suffix(".png").is_file()


def test_forecast_bad_file_is_one_line(trained, tmp_path: Path) -> None:
    run, _ = trained
    short = toy(tmp_path, 10, "short.csv")
    out = ["--out", str(tmp_path / "x.csv")]
    result = runner.invoke(app, ["forecast", str(run), "--file", str(short), *out])
    assert result.exit_code == 2
    lines = [x for x in result.stderr.splitlines() if x]
    assert len(lines) == 1 and "short.csv" in lines[0] and "lookback" in lines[0]
    wrong = write_csv(tmp_path / "wrong.csv", {"a": [1.0] * 30}, hourly(30))
    result = runner.invoke(app, ["forecast", str(run), "--file", str(wrong), *out])
    assert result.exit_code == 2 and "no column 'b'" in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_builtin_series_needs_no_data_folder(monkeypatch) -> None:
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    from rnnlab.config.loading import load_experiment

    from .conftest import CONFIGS

    t = build_task(load_experiment(CONFIGS / "series_demo.yaml"), torch.device("cpu"))
    assert t.targets == ["co2"] and t.freq.months == 1 and t.series.filled == 5
    assert t.describe()["first"].startswith("1958-03-01")


@pytest.mark.realdata
def test_etth1_last_value_baseline_matches_the_literature() -> None:
    root = os.environ.get("RNNLAB_DATA")
    if not root or not (Path(root) / "ETT-small" / "ETTh1.csv").is_file():
        pytest.skip("RNNLAB_DATA with ETT-small/ETTh1.csv is not available")
    from rnnlab.config.loading import load_experiment

    from .conftest import CONFIGS

    t = build_task(load_experiment(CONFIGS / "segrnn_etth1.yaml"), torch.device("cpu"))
    assert len(t.index["test"][0]) == 2785
    b = t.baselines["test"]
    assert b["last_value"]["mse"] == pytest.approx(1.295, abs=1e-3)
    assert b["last_value"]["mae"] == pytest.approx(0.713, abs=1e-3)
    assert b["train_mean"]["mse"] == pytest.approx(1.110, abs=1e-3)


# ----------------------------------------------------------------------------- issue 24: forecasting hardened


def train_small(root: Path, data: Path, model: dict[str, Any], task: dict[str, Any] | None = None,
                extra_data: dict[str, Any] | None = None) -> Path:
    from rnnlab.common.console import Reporter
    from rnnlab.execution.lifecycle import train_run

    exp = experiment(data, task=task, model=model, data=extra_data,
                     train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 16})
    return train_run(exp, root / "runs", Reporter(quiet=True))


def forecast_cli(run: Path, data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["forecast", str(run), "--file", str(data), "--out", str(out), *extra])


def one_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [x for x in result.stderr.splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("model,data,horizons", [
    ({"name": "linear"}, {"inputs": "MS"}, ["6", "3"]),
    ({"name": "segrnn", "hidden_size": 8, "segment": 6}, {"inputs": "MS"}, ["6"]),
    ({"name": "lstm", "hidden_size": 8}, {"inputs": "MS"}, ["6"]),
    ({"name": "linear"}, {"inputs": "S", "targets": "a"}, ["6", "13"]),
    ({"name": "linear"}, {"inputs": ["b", "a"], "targets": ["a"]}, ["6"]),
    ({"name": "linear"}, {"inputs": ["b", "a"], "targets": ["a", "b"]}, ["6", "14"]),  # rolled, reordered
])
def test_forecast_when_targets_are_not_the_inputs(tmp_path: Path, model, data, horizons) -> None:
    path = toy(tmp_path, 200)
    run = train_small(tmp_path, path, model, extra_data=data)
    targets = json.loads((run / "series.json").read_text())["targets"]
    for h in horizons:
        out = tmp_path / f"fc{h}.csv"
        result = forecast_cli(run, toy(tmp_path, 50, "recent.csv"), out, "--horizon", h)
        assert result.exit_code == 0, result.output
        rows = out.read_text().splitlines()
        assert rows[0] == ",".join(["date", *targets]) and len(rows) == int(h) + 1
        values = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
        assert np.isfinite(values).all()
    if data.get("inputs") == "MS":  # rolling feeds forecasts back as inputs: refused for MS
        recent = toy(tmp_path, 50, "recent.csv")
        line = one_line(forecast_cli(run, recent, tmp_path / "r.csv", "--horizon", "7"))
        assert "targets to be all the inputs" in line


def calendar_file(tmp_path: Path, stamps: list[str], name: str = "cal.csv") -> Path:
    n = len(stamps)
    return write_csv(tmp_path / name, {"v": (10 + np.sin(np.arange(n) / 2)).round(4).tolist()}, stamps)


def month_ends(start_year: int, months: int, every: int = 1) -> list[str]:
    import calendar as cal

    out = []
    for k in range(0, months * every, every):
        y, m = start_year + k // 12, k % 12 + 1
        out.append(f"{y:04d}-{m:02d}-{cal.monthrange(y, m)[1]:02d}")
    return out


def month_starts(start_year: int, n: int, every: int) -> list[str]:
    return [f"{start_year + (k * every) // 12:04d}-{(k * every) % 12 + 1:02d}-01" for k in range(n)]


@pytest.mark.parametrize("stamps,label,nxt", [
    (month_ends(2000, 40), "monthly (month-end)", "2003-05-31"),
    (month_ends(2000, 40, 3), "quarterly (month-end)", "2010-01-31"),
    (month_starts(2000, 40, 1), "monthly", "2003-05-01"),
    (month_starts(2000, 40, 3), "quarterly", "2010-01-01"),
    (month_starts(1960, 40, 12), "yearly", "2000-01-01"),
    ([(datetime(2020, 1, 6) + timedelta(weeks=k)).strftime("%Y-%m-%d") for k in range(40)], "1 week",
     "2020-10-12"),
])
def test_calendar_grids_are_read_and_continued(tmp_path: Path, stamps, label, nxt) -> None:
    from rnnlab.tasks.series_files import read_series

    s = read_series(calendar_file(tmp_path, stamps), time_column="date")
    assert s.freq.label() == label and len(s) == 40 and s.gap_rows == 0
    assert s.freq.add(s.times[-1], 1) == datetime.fromisoformat(nxt)


def test_month_end_continues_by_the_calendar() -> None:
    end = Frequency(months=1, month_end=True)
    assert [end.add(datetime(2000, 1, 31), k).date().isoformat() for k in (1, 2, 3, 13)] == [
        "2000-02-29", "2000-03-31", "2000-04-30", "2001-02-28"]
    quarters = Frequency(months=3, month_end=True)
    assert quarters.steps_between(datetime(2000, 3, 31), datetime(2000, 9, 30)) == 2


@pytest.mark.parametrize("stamps,first", [
    (month_ends(2000, 60, 3), "2015-01-31"),
    (month_starts(1950, 60, 12), "2010-01-01"),
])
def test_train_and_forecast_on_quarterly_and_yearly_files(tmp_path: Path, stamps, first) -> None:
    path = calendar_file(tmp_path, stamps)
    run = train_small(tmp_path, path, {"name": "linear"}, task={"lookback": 8, "horizon": 2})
    out = tmp_path / "fc.csv"
    result = forecast_cli(run, path, out, "--horizon", "3")
    assert result.exit_code == 0, result.output
    assert [r.split(",")[0] for r in out.read_text().splitlines()[1:]][0] == first


def test_dates_past_9999_are_one_line(tmp_path: Path) -> None:
    from rnnlab.tasks.series_files import read_series

    with pytest.raises(DataError, match="past 9999-12-31"):
        read_series(calendar_file(tmp_path, [*month_starts(9997, 36, 1), "10000-01-01"]), time_column="date")
    path = calendar_file(tmp_path, month_ends(9980, 60, 3), "train.csv")  # quarterly up to 9994
    run = train_small(tmp_path, path, {"name": "linear"}, task={"lookback": 8, "horizon": 2})
    late = calendar_file(tmp_path, month_ends(9998, 8, 3), "late.csv")  # ends 9999-10-31
    line = one_line(forecast_cli(run, late, tmp_path / "fc.csv"))
    assert "past 9999-12-31" in line and "late.csv" in line and not (tmp_path / "fc.csv").exists()


def test_a_file_at_another_frequency_than_the_run_is_refused(trained, tmp_path: Path) -> None:
    run, _ = trained
    n = 40
    days = [(START + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(n)]
    daily = write_csv(tmp_path / "daily.csv", {"a": [1.0] * n, "b": [2.0] * n}, days)
    line = one_line(forecast_cli(run, daily, tmp_path / "fc.csv"))
    assert "1 day apart" in line and "1 hour" in line and not (tmp_path / "fc.csv").exists()


def test_a_forecast_that_is_not_finite_is_an_error(trained, tmp_path: Path) -> None:
    run, _ = trained
    path = toy(tmp_path, 40, "huge.csv")
    lines = path.read_text().splitlines()
    cells = lines[-3].split(",")
    lines[-3] = ",".join([cells[0], "1e308", *cells[2:]])
    path.write_text("\n".join(lines) + "\n")
    line = one_line(forecast_cli(run, path, tmp_path / "fc.csv"))
    assert "not finite" in line and "'a'" in line and "1e+308" in line
    assert not (tmp_path / "fc.csv").exists()


def test_forecast_horizon_is_bounded_before_any_work(trained, tmp_path: Path) -> None:
    run, _ = trained
    line = one_line(forecast_cli(run, tmp_path / "absent.csv", tmp_path / "fc.csv", "--horizon", "2000000"))
    assert line.startswith("error: --horizon: at most 600 (100 x the run's horizon of 6)")
    assert "absent.csv" not in line  # refused before the file is read


@pytest.mark.parametrize("content,field", [
    ({"kind": 1}, "'path'"),
    ("[]", "not a JSON object"),
    ("cut", "not valid JSON"),
])
def test_series_json_is_read_back_strictly(trained, tmp_path: Path, content, field) -> None:
    import shutil

    run, data = trained
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    saved = json.loads((run / "series.json").read_text())
    (copy / "series.json").write_text(content if isinstance(content, str) else json.dumps(content))
    line = one_line(forecast_cli(copy, data, tmp_path / "fc.csv"))
    assert "series.json" in line and field in line
    for key, value, name in (("frequency", {"seconds": -3600}, "frequency"),
                             ("scaler", {**saved["scaler"], "scale": [1.0]}, "scaler.scale"),
                             ("targets", ["zz"], "targets")):
        (copy / "series.json").write_text(json.dumps({**saved, key: value}))
        line = one_line(forecast_cli(copy, data, tmp_path / "fc.csv"))
        assert "series.json" in line and name in line
