"""Issue 24's defect classes (one mechanism each): a full disk inside torch's writer, bounded and
validated numbers at every entry, the Python API's arguments, plugins that exit, failed resumes,
temp-file names in error lines, a FIFO in place of a run file."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common import safeio
from rnnlab.rundir import files as runs

from .test_hardening import TINY, deep_merge, one_line, train, write

runner = CliRunner()
ZIP_FAILURE = "[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"


# ----------------------------------------------------------------------------- ENOSPC in torch.save

def fail_torch_save(monkeypatch, after: int) -> None:
    """torch.save fails from call number ``after`` on as its zip writer does on a full disk: the
    file's write raises ENOSPC and torch turns it into a RuntimeError (with the OSError as context)."""
    real, calls = torch.save, [0]

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] < after:
            return real(obj, f, *args, **kwargs)
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError(ZIP_FAILURE)  # noqa: B904 - torch's writer does exactly this

    monkeypatch.setattr(torch, "save", save)


def test_disk_full_inside_torch_save_marks_the_run_failed_keeping_its_checkpoint(
        tmp_path: Path, monkeypatch) -> None:
    # the run saves sample_inputs.pt when it opens, epoch 1 best.pt and last.pt; epoch 2 fails
    fail_torch_save(monkeypatch, after=4)
    line = one_line(train(tmp_path, cfg=deep_merge(TINY, {"train": {"epochs": 3}})))
    assert line.endswith(".pt: no space left on device") and ".tmp" not in line, line
    monkeypatch.undo()
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert summary["status"] == "failed" and "no space left on device" in summary["error"]
    assert runs.load_checkpoint(run / runs.CHECKPOINTS / "last.pt")["trainer"]["epoch"] == 1
    assert not list(run.rglob(".*.tmp"))


def test_torch_writer_failure_without_the_oserror_counts_when_the_disk_is_full(
        tmp_path: Path, monkeypatch) -> None:
    """torch.save/jit.save to a path write from C++: no OSError, only the failure's words; the
    file system then says whether it was full."""
    exc = RuntimeError(ZIP_FAILURE)
    assert not safeio.is_disk_full(exc, tmp_path / "x.pt")  # this disk has room: not disk-full
    assert not safeio.is_disk_full(RuntimeError("shape mismatch"), tmp_path / "x.pt")

    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(os, "statvfs", lambda path: Full())
    assert safeio.is_disk_full(exc, tmp_path / "missing" / "x.pt")
    assert not safeio.is_disk_full(RuntimeError("shape mismatch"), tmp_path / "x.pt")
    with pytest.raises(safeio.RnnlabError, match="no space left on device"):
        safeio.guard_disk_full(tmp_path / "x.pt", lambda: (_ for _ in ()).throw(exc))


def test_error_lines_name_the_users_file_not_a_temp_file(tmp_path: Path) -> None:
    assert safeio.without_temp_names(f"{tmp_path}/.summary.json.k3j_x9a2.tmp: no space") == \
        f"{tmp_path}/summary.json: no space"
    assert safeio.without_temp_names("cannot write '/a/.model.onnx.tmp'") == "cannot write '/a/model.onnx'"
    assert safeio.without_temp_names("/a/b.tmpl and notes.tmp") == "/a/b.tmpl and notes.tmp"


# ----------------------------------------------------------------------------- Python API arguments

def test_api_arguments_are_checked_like_the_cli(tmp_path: Path) -> None:
    import rnnlab

    with pytest.raises(rnnlab.ConfigError, match="^config: must be a sweep file's path"):
        rnnlab.sweep(None)  # type: ignore[arg-type]
    with pytest.raises(rnnlab.ConfigError, match="^resume: must be a sweep directory's path"):
        rnnlab.sweep(None, resume=3)  # type: ignore[arg-type]
    with pytest.raises(rnnlab.ConfigError, match=r"^--workers: must be an integer from 1 to \d+"):
        rnnlab.sweep(str(tmp_path / "s.yaml"), workers=0)
    run = rnnlab.Run(tmp_path)  # the device is refused before the run is even read
    for call in (lambda: run.model(device="tpu"), lambda: run.evaluate(device="cuda:0"),
                 lambda: run.generate(device=3),  # type: ignore[arg-type]
                 lambda: run.predict("x", device="gpu")):
        with pytest.raises(rnnlab.ConfigError, match="^device: must be cpu, cuda or auto"):
            call()


# ----------------------------------------------------------------------------- plugins that exit

@pytest.fixture
def stop_handlers():
    """rnnlab's signal handlers, as the command line installs them."""
    import signal

    from rnnlab.common import signals

    saved = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    signals.install_stop_handlers()
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("body, said", [("import sys\nsys.exit(0)\n", "called sys.exit(0)"),
                                        ("raise SystemExit(3)\n", "called sys.exit(3)"),
                                        ("raise KeyboardInterrupt\n", "raised KeyboardInterrupt")])
def test_a_plugin_that_exits_is_the_plugins_error(tmp_path: Path, stop_handlers, body: str,
                                                  said: str) -> None:
    plugin = tmp_path / "exit0.py"
    plugin.write_text(body)
    line = one_line(runner.invoke(app, ["check", "lstm", "--plugin", str(plugin)]))
    assert line.startswith("error: --plugin") and f"plugin {plugin} {said}" in line, line
    line = one_line(train(tmp_path, cfg={**TINY, "plugins": [str(plugin)]}))
    assert "plugins[0]" in line and said in line, line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


# ----------------------------------------------------------------------------- bounded numbers

@pytest.mark.parametrize("args, message", [
    (["--temperature", "inf"], "--temperature: must be a finite number from 0 to 1000"),
    (["--temperature", "nan"], "--temperature: must be a finite number"),
    (["--temperature", "5e-324"], "--temperature: must be 0 (greedy) or at least 0.001"),
    (["--seed", "99999999999999999999999"], "--seed: must be an integer from -9223372036854775808"),
    (["--length", "100000000000"], "--length: must be an integer from 0 to 1000000"),
    (["--top-k", "0"], "--top-k: must be an integer >= 1"),
])
def test_generate_numbers_are_bounded_before_the_run_is_read(tmp_path: Path, args: list[str],
                                                             message: str) -> None:
    line = one_line(runner.invoke(app, ["generate", str(tmp_path / "no-run"), *args]))
    assert line.startswith(f"error: {message}"), line


def test_gradflow_steps_are_bounded(tmp_path: Path) -> None:
    line = one_line(runner.invoke(app, ["gradflow", str(write(tmp_path)), "--steps", "1000000000000"]))
    assert line.startswith("error: --steps: must be an integer from 0 to 100000"), line
    assert not (tmp_path / "gradflow.png").exists()


def sweep_file(folder: Path, body: dict[str, Any]) -> Path:
    import yaml

    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump({"base": dict(TINY), **body}))
    return path


@pytest.mark.parametrize("body, message", [
    ({"random": {"trials": 10**9, "train.lr": {"uniform": [0.001, 0.1]}}},
     "random.trials: 1000000000 trials is more than 10000"),
    ({"grid": {"model.hidden_size": list(range(1, 101)), "train.lr": [0.01 * i for i in range(1, 101)]},
      "repeats": 2}, "the sweep: grid points x random.trials x seeds: 20000 trials is more than 10000"),
    ({"grid": {"model.hidden_size": [4]}, "repeats": 10**12}, "repeats: 1000000000000 trials"),
    ({"tpe": {"trials": 5, "train.lr": {"uniform": [0.001, float("nan")]}}},
     "tpe.train.lr.uniform: high: must be a finite number"),
    ({"cmaes": {"trials": 5, "train.lr": {"loguniform": [0.001, float("inf")]}}},
     "cmaes.train.lr.loguniform: high: must be a finite number"),
    ({"random": {"trials": 2, "train.epochs": {"int": [1, 2**70]}}},
     "random.train.epochs.int: high: must be an integer from"),
    ({"tpe": {"trials": 5, "train.lr": {"uniform": [-1.0, 0.1]}}},
     "tpe.train.lr: -1.0 is in its range but not a valid value"),
    ({"tpe": {"trials": 10**6, "train.lr": {"uniform": [0.001, 0.1]}}}, "tpe.trials: 1000000 trials"),
])
def test_sweep_numbers_are_bounded_before_the_sweep_exists(tmp_path: Path, body: dict[str, Any],
                                                           message: str) -> None:
    runs_dir = tmp_path / "runs"
    args = ["sweep", str(sweep_file(tmp_path, body)), "--runs-dir", str(runs_dir)]
    line = one_line(runner.invoke(app, args))
    assert message in line, line
    assert not runs_dir.exists() or not list(runs_dir.iterdir())


def test_a_tiny_time_budget_with_a_per_step_schedule_stops_after_one_step(tmp_path: Path) -> None:
    cfg = deep_merge(TINY, {"train": {"max_time": 5e-324, "scheduler": {"name": "cosine"}}})
    result = train(tmp_path, cfg=cfg)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    summary = runs.read_summary(run)
    assert summary["status"] == "completed" and summary["steps"] == 1, summary


def test_empty_column_lists_are_config_errors(tmp_path: Path) -> None:
    cfg = {"task": {"name": "series", "lookback": 8, "horizon": 2},
           "model": {"name": "lstm", "hidden_size": 4},
           "data": {"inputs": []}}
    line = one_line(runner.invoke(app, ["config", str(write(tmp_path, cfg))]))
    assert line.endswith("data.inputs: must list at least one column (or leave it out for the default)")
    cfg["data"] = {"inputs": ["co2", "co2"]}
    line = one_line(runner.invoke(app, ["config", str(write(tmp_path, cfg))]))
    assert "column 'co2' is listed twice" in line


# ----------------------------------------------------------------------------- a failed resume

def test_a_resume_that_fails_before_training_goes_on_leaves_the_summary_as_it_was(
        tmp_path: Path, monkeypatch) -> None:
    from rnnlab.errors import ConfigError
    from rnnlab.execution import resume

    assert train(tmp_path, cfg=deep_merge(TINY, {"train": {"epochs": 1}})).exit_code == 0
    (run,) = (tmp_path / "runs").iterdir()
    summary = run / runs.SUMMARY
    data = json.loads(summary.read_text())
    data["status"] = "interrupted"  # as a stop leaves it
    runs.write_json(summary, data)
    before = summary.read_bytes()

    def cannot_open(*args: Any, **kwargs: Any) -> None:
        raise ConfigError("logging.mlflow", "tracking server unreachable")

    monkeypatch.setattr(resume, "open_live", cannot_open)
    line = one_line(runner.invoke(app, ["train", "--resume", str(run), "--set", "train.epochs=2", "-q"]))
    assert line == "error: logging.mlflow: tracking server unreachable"
    assert summary.read_bytes() == before  # still interrupted, resumable; not rewritten as failed


def test_disk_full_inside_the_exporters_writer_is_one_line_naming_the_export(tmp_path: Path,
                                                                              monkeypatch) -> None:
    from rnnlab.integrations import export

    assert train(tmp_path, cfg=deep_merge(TINY, {"train": {"epochs": 1}})).exit_code == 0
    (run,) = (tmp_path / "runs").iterdir()

    def full(*args: Any, **kwargs: Any) -> None:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError(ZIP_FAILURE)  # noqa: B904 - as torch's writer does

    monkeypatch.setattr(export, "write_torchscript", full)
    out = tmp_path / "model.pt"
    line = one_line(runner.invoke(app, ["export", str(run), "--format", "torchscript", "--out", str(out)]))
    assert line == f"error: {out}: no space left on device"
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


# ----------------------------------------------------------------------------- a FIFO as a run file

def test_a_fifo_in_place_of_metrics_is_reported_without_reading_it(tmp_path: Path) -> None:
    assert train(tmp_path, cfg=deep_merge(TINY, {"train": {"epochs": 1}})).exit_code == 0
    (run,) = (tmp_path / "runs").iterdir()
    (run / runs.METRICS).unlink()
    os.mkfifo(run / runs.METRICS)  # opening it for reading would block until a writer comes
    result = runner.invoke(app, ["show", str(run)])
    assert result.exit_code == 0 and "last epoch: unreadable" in result.output
    assert "not a regular file" in result.output
