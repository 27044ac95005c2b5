"""The Python API as a notebook uses it: a dict override, DataFrames, rnnlab.runs(), reprs, resume."""

from __future__ import annotations

import json
import sys

import pytest

import rnnlab

from .conftest import SINE_TINY

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One notebook session, in a fresh working directory with a relative runs folder: a run
    trained with a dict override, and a two-trial sweep."""
    folder = tmp_path_factory.mktemp("notebook")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        run = rnnlab.train(SINE_TINY, overrides={"train.epochs": 2, "model": {"hidden_size": 4}})
        spec = {"name": "nb_sweep", "base": {**SINE_TINY, "train": {**SINE_TINY["train"], "epochs": 1}},
                "grid": {"model.hidden_size": [4, 8]}}
        swept = rnnlab.sweep(spec, workers=2)
    return folder, run, swept


def test_a_dict_override_trains_and_the_history_is_a_dataframe(session) -> None:
    folder, run, _ = session
    assert run.path.is_absolute() and run.path.parent == (folder / "runs").resolve()
    assert run.config["train"]["epochs"] == 2 and run.config["model"]["hidden_size"] == 4
    frame = run.history_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == [1, 2] and frame.index.name == "epoch"
    assert frame["train_loss"].tolist() == [row["train_loss"] for row in run.history]
    assert "val_mse" in frame.columns
    overrides = "{'train.epochs': 2, 'model': {'hidden_size': 4}}"
    assert run.summary["command"] == f"rnnlab.train(<dict>, overrides={overrides})"


def test_trials_dataframe_one_row_per_trial_best_first(session) -> None:
    _, _, swept = session
    frame = swept.trials_dataframe()
    assert len(frame) == 2 and frame["rank"].tolist() == [1, 2]
    assert sorted(frame["model.hidden_size"]) == [4, 8]
    assert frame["status"].tolist() == ["completed", "completed"]
    assert frame["score"].tolist() == frame["val_mse"].tolist()  # ranked by the task's metric
    assert frame["score"].iloc[0] <= frame["score"].iloc[1]  # mse: lower is better
    assert set(frame["run"]) == {str(r.path) for r in swept.runs()}
    assert "test_mse" in frame.columns


def test_paths_are_absolute_and_the_same_from_every_entry_point(session) -> None:
    folder, run, swept = session
    assert swept.path.is_absolute() and swept.best is not None
    assert all(r.path.is_absolute() for r in swept.runs())
    assert rnnlab.load_run(run.path) == run
    listed = rnnlab.runs(folder / "runs")
    assert run in listed and set(swept.runs()) <= set(listed)


def test_runs_lists_runs_newest_first_and_reports_an_unreadable_one(session, tmp_path) -> None:
    import shutil

    folder, run, swept = session
    listed = rnnlab.runs(folder / "runs")
    assert len(listed) == 3 and all(isinstance(r, rnnlab.Run) for r in listed)
    started = [r.summary["started"] for r in listed]
    assert started == sorted(started, reverse=True)
    assert rnnlab.runs(folder / "runs", model="gru") == []
    copy = tmp_path / "runs"
    shutil.copytree(run.path, copy / run.path.name)
    shutil.copytree(run.path, copy / "20990101-000000_broken")
    (copy / "20990101-000000_broken" / "summary.json").write_text("{not json")
    with pytest.warns(UserWarning, match="1 run.* could not be read: 20990101-000000_broken"):
        both = rnnlab.runs(copy)
    assert len(both) == 2
    broken = next(r for r in both if r.path.name.endswith("broken"))
    assert "unreadable (summary.json is corrupted" in repr(broken)
    with pytest.raises(rnnlab.RunDirError, match="runs directory not found"):
        rnnlab.runs(tmp_path / "nowhere")


def test_reprs_are_short_and_readable_with_html_tables(session) -> None:
    _, run, swept = session
    text = repr(run)
    assert text.startswith(f"<Run {run.path.name}: completed, sine/lstm, test mse ") and "\n" not in text
    assert str(run.path) in text and len(text) < 300
    html = run._repr_html_()
    assert html.startswith("<table>") and "test mse" in html and str(run.path) in html
    lines = repr(swept).splitlines()
    assert lines[0].startswith(f"<SweepResult {swept.path.name}: completed, 2 trial(s) (2 completed)")
    assert lines[-3].split() == ["rank", "trial", "status", "score", "model.hidden_size"]
    assert lines[-2].split()[:3] == ["1", swept.trials[0].trial, "completed"]
    assert max(len(line) for line in lines) < 200 and len(lines) <= 7
    table = swept._repr_html_()
    assert table.count("<tr>") == 3 and "<th>model.hidden_size</th>" in table


def test_html_escapes_what_it_shows(tmp_path, session) -> None:
    import shutil

    _, run, _ = session
    odd = tmp_path / "a<b>&c"
    shutil.copytree(run.path, odd)
    html = rnnlab.load_run(odd)._repr_html_()
    assert "a&lt;b&gt;&amp;c" in html and "a<b>" not in html


def test_override_errors_name_the_api_not_the_command_line(tmp_path) -> None:
    runs_dir = tmp_path / "runs"
    cases = [("train.epochs=2", "overrides: must be a mapping"),
             (["train.epochs"], "overrides: expected KEY=VALUE"),
             ({"": 1}, "overrides: bad key ''"),
             ({"bogus.x": 1}, "overrides: bogus.x: unknown section 'bogus'"),
             (3, "overrides: must be a mapping")]
    for overrides, message in cases:
        with pytest.raises(rnnlab.ConfigError) as info:
            rnnlab.train(SINE_TINY, overrides=overrides, runs_dir=runs_dir)  # type: ignore[arg-type]
        assert str(info.value).startswith(message) and "--set" not in str(info.value)
    with pytest.raises(rnnlab.ConfigError, match="^config: missing"):
        rnnlab.train(runs_dir=runs_dir)
    assert not runs_dir.exists()


def test_resume_continues_a_run_like_the_command_line(tmp_path) -> None:
    runs_dir = tmp_path / "runs"
    run = rnnlab.train(SINE_TINY, overrides={"train.epochs": 1}, runs_dir=runs_dir)
    config_before = (run.path / "config.yaml").read_text()
    with pytest.raises(rnnlab.ConfigError, match="^overrides: model.hidden_size: cannot change"):
        rnnlab.train(resume=run, overrides={"model.hidden_size": 4})
    with pytest.raises(rnnlab.ConfigError, match="^config: a resumed run keeps its own config"):
        rnnlab.train(SINE_TINY, resume=run)
    assert (run.path / "config.yaml").read_text() == config_before  # refused: nothing changed
    again = rnnlab.train(resume=run.path.name, runs_dir=runs_dir, overrides=["train.epochs=2"])
    assert again == run and again.summary["epochs_completed"] == 2 and len(again.history) == 2
    assert again.summary["status"] == "completed"
    with pytest.warns(UserWarning, match="already completed"):
        assert rnnlab.train(resume=run) == run


def test_without_pandas_one_line_names_the_extra(session, monkeypatch) -> None:
    _, run, swept = session
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    for call in (run.history_frame, swept.trials_dataframe):
        with pytest.raises(ImportError) as info:
            call()
        assert isinstance(info.value, rnnlab.RnnlabError)
        assert "pip install 'rnnlab[pandas]'" in str(info.value) and "\n" not in str(info.value)


def test_a_run_is_a_path(session) -> None:
    import os

    _, run, _ = session
    assert os.fspath(run) == str(run.path)
    assert json.loads((run.path / "summary.json").read_text())["status"] == "completed"
