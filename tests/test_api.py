"""The Python API (rnnlab.train / load_run / sweep and Run): the same runs as the command line."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import torch
import yaml

import rnnlab

from .conftest import REPO, SINE_TINY


def test_train_from_a_path_returns_a_run_whose_evaluation_equals_its_summary(write_config, runs_dir) -> None:
    run = rnnlab.train(write_config(), runs_dir=runs_dir)
    assert isinstance(run, rnnlab.Run) and run.path.parent == runs_dir
    summary = run.summary
    assert summary["status"] == "completed"
    assert rnnlab.load_run(run.path).evaluate() == summary["test"]
    assert rnnlab.load_run(run.path).evaluate("val") == pytest.approx(summary["best_val"])
    assert len(run.history) == SINE_TINY["train"]["epochs"]
    assert run.config == yaml.safe_load((run.path / "config.yaml").read_text())
    model = run.model()
    assert isinstance(model, torch.nn.Module) and not model.training
    assert summary["command"] == f"rnnlab.train({str(write_config())!r})"


def test_train_from_a_mapping_with_overrides_and_a_name(runs_dir, capsys) -> None:
    config = {**SINE_TINY, "name": "from_dict"}
    run = rnnlab.train(config, overrides=["train.epochs=2", "model.hidden_size=4"], runs_dir=runs_dir,
                       name="api_run")
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # quiet by default: nothing printed at all
    assert run.summary["name"] == "api_run" and run.summary["epochs_completed"] == 2
    assert run.config["model"]["hidden_size"] == 4
    assert config["train"]["epochs"] == 3  # the caller's mapping is not changed


def test_progress_lines_when_not_quiet(runs_dir, capsys) -> None:
    rnnlab.train(SINE_TINY, runs_dir=runs_dir, quiet=False)
    out = capsys.readouterr().out
    assert "epoch 1/3" in out and "test " in out


def test_an_experiment_object_is_accepted(runs_dir) -> None:
    exp = rnnlab.experiment(SINE_TINY, ["train.epochs=1"])
    assert rnnlab.train(exp, runs_dir=runs_dir).summary["epochs_completed"] == 1


def test_user_errors_raise_the_exception_family(tmp_path, runs_dir) -> None:
    with pytest.raises(rnnlab.ConfigError, match="model.hidden_sise"):
        rnnlab.train(SINE_TINY, overrides=["model.hidden_sise=3"], runs_dir=runs_dir)
    with pytest.raises(rnnlab.ConfigError, match="overrides"):
        rnnlab.train(SINE_TINY, overrides="train.epochs=2", runs_dir=runs_dir)  # type: ignore[arg-type]
    with pytest.raises(rnnlab.ConfigError, match="config"):
        rnnlab.train(42, runs_dir=runs_dir)  # type: ignore[arg-type]
    with pytest.raises(rnnlab.RnnlabError):
        rnnlab.load_run(tmp_path)  # not a run directory
    assert not runs_dir.exists() or not any(runs_dir.iterdir())  # nothing was written


def test_signal_handlers_are_restored_after_training(runs_dir) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    rnnlab.train(SINE_TINY, runs_dir=runs_dir)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_task_verbs_refuse_runs_of_other_tasks(runs_dir) -> None:
    run = rnnlab.train(SINE_TINY, overrides=["train.epochs=1"], runs_dir=runs_dir)
    with pytest.raises(rnnlab.RunDirError, match="text classification"):
        run.predict("a fine film")
    with pytest.raises(rnnlab.RunDirError, match="does not generate text"):
        run.generate("a")
    with pytest.raises(rnnlab.ConfigError, match="split"):
        run.evaluate("validation")


def test_generate_from_a_charlm_run(tmp_path, runs_dir) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    config = {"task": {"name": "charlm", "bptt": 16, "samples": 0, "eval_chunk": 64},
              "data": {"path": str(corpus)},
              "model": {"name": "lstm", "hidden_size": 16}, "logging": {"plots": False},
              "train": {"epochs": 1, "batch_size": 8, "threads": 1}}
    run = rnnlab.train(config, runs_dir=runs_dir)
    text = run.generate("the ", length=20, seed=0)
    assert text.startswith("the ") and len(text) == 24
    assert run.generate("the ", length=20, seed=0) == text


def test_sweep_from_a_mapping(runs_dir) -> None:
    spec = {"name": "api_sweep", "base": {**SINE_TINY, "train": {**SINE_TINY["train"], "epochs": 1}},
            "grid": {"model.hidden_size": [4, 8]}}
    result = rnnlab.sweep(spec, runs_dir=runs_dir)
    assert result.status == "completed" and len(result.trials) == 2
    assert result.best is not None and result.best.summary["status"] == "completed"
    assert {r.summary["name"].split("_")[0] for r in result.runs()} == {t.trial for t in result.trials}
    assert "rnnlab.sweep(<dict>)" in (result.path / "command.txt").read_text()


def test_import_rnnlab_loads_no_torch_and_reads_no_argv() -> None:
    code = ("import sys; sys.argv = ['x', '--bogus']; import rnnlab; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert callable(rnnlab.train) and callable(rnnlab.register_model); print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_a_trial_reports_its_run_and_error_in_a_result_file(tmp_path, monkeypatch, runs_dir) -> None:
    from rnnlab.common.invocation import RESULT_FILE_ENV, read_result, report

    result = tmp_path / "result.json"
    monkeypatch.setenv(RESULT_FILE_ENV, str(result))
    run = rnnlab.train(SINE_TINY, overrides=["train.epochs=1"], runs_dir=runs_dir)
    assert read_result(result) == {"run": str(run.path.resolve())}
    report(error="data.path: not found")
    assert read_result(result) == {"run": str(run.path.resolve()), "error": "data.path: not found"}
    monkeypatch.delenv(RESULT_FILE_ENV)
    spec = {"name": "res", "base": {**SINE_TINY, "train": {**SINE_TINY["train"], "epochs": 1}},
            "grid": {"model.hidden_size": [4]}}
    swept = rnnlab.sweep(spec, runs_dir=tmp_path / "s")
    (record,) = swept.trials
    (file,) = (swept.path / "results").glob("*.json")
    assert read_result(file)["run"] == record.run and "error" not in read_result(file)
