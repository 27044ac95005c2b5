"""Resume after any interruption ends with exactly the metrics of the same run left alone (CPU),
graceful stops on signals, divergence, and the checks a resume makes before writing anything."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common import atomic
from rnnlab.common.console import Reporter
from rnnlab.common.signals import GracefulStop
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.execution.resume import resume_run
from rnnlab.rundir import files as runs
from rnnlab.tasks import TASKS
from rnnlab.tasks.base import Batch, batch_indices
from rnnlab.tasks.sine import Sine
from rnnlab.training.evaluation import evaluate_run
from rnnlab.training.stops import Diverged, Interrupted

from .conftest import REPO

TIMINGS = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")
runner = CliRunner()


def metric_rows(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in TIMINGS}
            for row in runs.read_jsonl(run / runs.METRICS)]


def summary(run: Path) -> dict[str, Any]:
    return json.loads((run / runs.SUMMARY).read_text())


def assert_same_results(resumed: Path, alone: Path) -> None:
    assert metric_rows(resumed) == metric_rows(alone)
    a, b = summary(resumed), summary(alone)
    assert a["status"] == b["status"] == "completed"
    assert a["test"] == b["test"] and a["best_val"] == b["best_val"]
    assert a["best_epoch"] == b["best_epoch"] and a["steps"] == b["steps"]


class Hook(Reporter):
    """A quiet reporter that acts once, at the end of ``epoch`` or at ``step`` of that epoch."""

    def __init__(self, epoch: int, step: Optional[int] = None, action: Any = None) -> None:
        super().__init__(quiet=True)
        self.at_epoch, self.at_step = epoch, step
        self.action = action or (lambda: os.kill(os.getpid(), signal.SIGINT))

    def wants_step(self, step: int) -> bool:
        return self.epoch == self.at_epoch and step == self.at_step

    def step(self, step: int, loss: float, seconds: float) -> None:
        self.action()

    def epoch_end(self, row: dict[str, Any], metric: str) -> None:
        if self.at_step is None and row["epoch"] == self.at_epoch:
            self.action()


class Crash(BaseException):
    """Stands in for the process dying (kill -9, power cut) inside the training loop."""


def crash() -> None:
    raise Crash()


def train(path: Path, runs_dir: Path, reporter: Optional[Reporter] = None, *overrides: str) -> Path:
    return train_run(load_experiment(path, list(overrides)), runs_dir, reporter or Reporter(quiet=True))


def only_run(runs_dir: Path) -> Path:
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run


def resume(run: Path, *overrides: str) -> Path:
    done, note = resume_run(run, list(overrides), run.parent, Reporter(quiet=True))
    assert note is None
    return done


# ----------------------------------------------------------------------------- exact resume


def test_sigint_after_epoch_1_of_3_then_resume_matches_run_left_alone(write_config, tmp_path) -> None:
    path = write_config({"model": {"dropout": 0.2, "num_layers": 2}})
    handler = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    alone = train(path, tmp_path / "alone")
    with pytest.raises(Interrupted) as info:
        train(path, tmp_path / "cut", Hook(epoch=1))
    run = info.value.run_dir
    assert info.value.signum == signal.SIGINT and info.value.saved == "after epoch 1"
    assert summary(run)["status"] == "interrupted" and summary(run)["epochs_completed"] == 1
    assert len(runs.read_jsonl(run / runs.METRICS)) == 1
    assert resume(run) == run
    assert_same_results(run, alone)
    assert summary(run)["resumed"][0]["from"] == "after epoch 1"
    assert evaluate_run(run) == summary(run)["test"]
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored


HARD = {"model": {"dropout": 0.2, "num_layers": 2},
        "train": {"steps_per_epoch": 13, "scheduler": "onecycle", "early_stopping": 5,
                  "optimizer": "adamw", "weight_decay": 0.01}}


def test_mid_epoch_stop_resumes_exactly(write_config, tmp_path) -> None:
    """Passes chained over epochs (13 steps, 12-batch passes), a per-step schedule and dropout:
    the resume must replay the data order to the exact batch and restore every RNG."""
    path = write_config(HARD)
    alone = train(path, tmp_path / "alone")
    with pytest.raises(Interrupted) as info:
        train(path, tmp_path / "cut", Hook(epoch=2, step=5))
    run = info.value.run_dir
    assert info.value.saved == "at step 5 of epoch 2"
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["progress"]["steps"] == 5
    resume(run)
    assert_same_results(run, alone)


def test_checkpoint_every_steps_survives_a_crash(write_config, tmp_path) -> None:
    path = write_config({**HARD, "train": {**HARD["train"], "checkpoint_every": 4}})
    alone = train(path, tmp_path / "alone")
    with pytest.raises(Crash):
        train(path, tmp_path / "cut", Hook(epoch=2, step=11, action=crash))
    run = only_run(tmp_path / "cut")
    assert summary(run)["status"] == "failed"
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert ckpt["trainer"]["step"] == 20 and ckpt["progress"]["steps"] == 7  # 13 + 7: a multiple of 4
    # a power cut mid-append and temp files of an interrupted atomic write
    with open(run / runs.METRICS, "a") as fh:
        fh.write('{"epoch": 2, "tr')
    (run / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"partial")
    resume(run)
    assert not list(run.glob("**/.*.tmp"))
    assert_same_results(run, alone)


class CarrySine(Sine):
    """Sine seq2seq as a stateful task (like truncated BPTT): each batch starts from the recurrent
    state the previous batch ended with, so a mid-epoch resume needs that state too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = dataclasses.replace(self.spec, stateful=True)

    def steps_per_epoch(self, batch_size: int) -> int:
        return len(self.windows["train"]["x"]) // batch_size

    def train_batches(self, batch_size: int, generator: torch.Generator):
        data = self.windows["train"]
        for idx in batch_indices(len(data["x"]), batch_size, generator, drop_last=True):
            yield Batch(data["x"][idx], data["y"][idx])

    def loss(self, model, batch, state=None):
        out, state = model(batch.x, None, state)
        return torch.nn.functional.mse_loss(out, batch.y), state


def test_mid_epoch_resume_restores_the_carried_recurrent_state(write_config, tmp_path,
                                                               monkeypatch) -> None:
    monkeypatch.setitem(TASKS._items, "sine", (CarrySine, "stateful sine"))
    path = write_config({"task": {"mode": "seq2seq", "seq_len": 20, "stride": 5, "warmup": 0},
                         "model": {"name": "gru"}, "train": {"batch_size": 4}})
    alone = train(path, tmp_path / "alone")
    with pytest.raises(Interrupted) as info:
        train(path, tmp_path / "cut", Hook(epoch=2, step=3))
    run = info.value.run_dir
    carry = torch.load(run / "checkpoints/last.pt", weights_only=True)["progress"]["carry"]
    assert carry.shape == (1, 4, 8)
    resume(run)
    assert_same_results(run, alone)


@pytest.mark.parametrize("batching", ["sequential", "random"])
def test_charlm_mid_epoch_resume_is_exact(batching: str, tmp_path) -> None:
    """The stateful BPTT task: rows continued across batches with the state carried (sequential),
    passes chained by tokens_per_epoch, text samples at the end."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: but soft, what light through yonder window breaks? " * 40)
    path = tmp_path / "charlm.yaml"
    path.write_text(yaml.safe_dump({
        "task": {"name": "charlm", "bptt": 12, "batching": batching, "samples": 1, "sample_length": 20},
        "model": {"name": "gru", "hidden_size": 8, "embedding_dim": 6, "dropout": 0.1},
        "train": {"epochs": 3, "batch_size": 4, "lr": 0.01, "threads": 1, "tokens_per_epoch": 600},
        "data": {"path": str(corpus)}, "logging": {"plots": False}}))
    alone = train(path, tmp_path / "alone")
    with pytest.raises(Interrupted) as info:
        train(path, tmp_path / "cut", Hook(epoch=2, step=7))
    run = info.value.run_dir
    assert info.value.saved == "at step 7 of epoch 2"
    resume(run)
    assert_same_results(run, alone)
    samples = [(r / "samples.txt").read_text().replace(str(r), "RUN") for r in (run, alone)]
    assert samples[0] == samples[1]


def test_checkpoint_every_minutes_parses_and_trains(write_config, tmp_path) -> None:
    run = train(write_config({"train": {"epochs": 1, "checkpoint_every": "0.001 min"}}), tmp_path / "r")
    assert summary(run)["status"] == "completed"
    assert load_experiment(run / runs.CONFIG).train.checkpoint_every.minutes == 0.001


def test_metrics_cut_back_to_the_checkpoint(write_config, tmp_path) -> None:
    """Killed after writing epoch 2's metrics line but before last.pt: epoch 2 is redone and
    metrics.jsonl keeps one line per epoch."""
    path = write_config()
    alone = train(path, tmp_path / "alone")
    with pytest.raises(Interrupted) as info:
        train(path, tmp_path / "cut", Hook(epoch=1))
    run = info.value.run_dir
    rows = runs.read_jsonl(alone / runs.METRICS)
    runs.append_jsonl(run / runs.METRICS, rows[1])
    resume(run)
    assert [r["epoch"] for r in runs.read_jsonl(run / runs.METRICS)] == [1, 2, 3]
    assert_same_results(run, alone)


def test_resume_extends_a_completed_run_with_more_epochs(write_config, tmp_path) -> None:
    path = write_config()
    alone = train(path, tmp_path / "alone")  # 3 epochs
    short = train(path, tmp_path / "short", None, "train.epochs=2")
    result = runner.invoke(app, ["train", "--resume", short.name, "--runs-dir", str(short.parent),
                                 "-q", "--set", "train.epochs=3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(short)
    assert_same_results(short, alone)
    assert "epochs: 3" in (short / runs.CONFIG).read_text()


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size,
                                         p.read_bytes() if p.is_file() else b"")
            for p in sorted(folder.rglob("*"))}


def test_resuming_a_completed_run_says_so_and_changes_nothing(write_config, tmp_path) -> None:
    run = train(write_config({"train": {"epochs": 1}}), tmp_path / "r")
    before = snapshot(run)
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert "already completed (1 epochs); nothing to do" in result.stdout
    assert snapshot(run) == before


def test_second_signal_exits_at_once(monkeypatch) -> None:
    events: list[Any] = []

    def hard_exit(status: int) -> None:  # os._exit never returns
        events.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(os, "_exit", hard_exit)
    stop = GracefulStop(lambda: events.append("stop requested"))
    stop._handle(signal.SIGTERM, None)
    assert stop.signum == signal.SIGTERM and events == ["stop requested"]
    with pytest.raises(SystemExit):
        stop._handle(signal.SIGINT, None)
    assert events == ["stop requested", 130]


def test_files_get_the_umask_mode_not_mkstemps_0600(write_config, tmp_path) -> None:
    run = train(write_config({"train": {"epochs": 1}}), tmp_path / "r")
    for name in ("config.yaml", "summary.json", "checkpoints/last.pt"):
        assert (run / name).stat().st_mode & 0o777 == atomic.FILE_MODE


# ----------------------------------------------------------------------------- refusals


@pytest.fixture
def interrupted_run(write_config, tmp_path) -> Path:
    with pytest.raises(Interrupted) as info:
        train(write_config({"train": {"scheduler": "cosine"}}), tmp_path / "cut", Hook(epoch=1))
    assert info.value.run_dir is not None
    return info.value.run_dir


def cli_error(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def test_unsafe_change_refused_safe_one_accepted(interrupted_run: Path) -> None:
    before = snapshot(interrupted_run)
    line = cli_error("train", "--resume", str(interrupted_run), "--set", "model.hidden_size=16")
    assert "error: --set: model.hidden_size: cannot change when resuming (8 in the checkpoint, 16 " \
        "asked)" in line
    assert "safe to change: train.epochs" in line
    line = cli_error("train", "--resume", str(interrupted_run), "--set", "train.epochs=5")
    assert "train.epochs: cannot change when resuming with scheduler 'cosine'" in line
    assert snapshot(interrupted_run) == before
    config = interrupted_run / runs.CONFIG
    original = config.read_text()
    config.write_text(original.replace("lr: 0.01", "lr: 0.02"))
    edited = snapshot(interrupted_run)
    line = cli_error("train", "--resume", str(interrupted_run))
    assert "config.yaml: train.lr: cannot change when resuming (0.01 in the checkpoint, 0.02 in " \
        "this file: edited since, or the checkpoint comes from another run)" in line
    assert snapshot(interrupted_run) == edited
    config.write_text(original)
    result = runner.invoke(app, ["train", "--resume", str(interrupted_run), "-q",
                                 "--set", "train.log_every=7", "--set", "train.threads=1"])
    assert result.exit_code == 0, result.output
    assert summary(interrupted_run)["status"] == "completed"


def test_truncated_last_checkpoint(interrupted_run: Path) -> None:
    last = interrupted_run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = snapshot(interrupted_run)
    line = cli_error("train", "--resume", str(interrupted_run))
    assert line == f"error: {last}: checkpoint is truncated or corrupted (torch.load cannot read it)"
    assert snapshot(interrupted_run) == before


def test_checkpoint_of_another_model_shape(interrupted_run: Path, write_config, tmp_path) -> None:
    other = train(write_config({"model": {"hidden_size": 5}, "train": {"epochs": 1}}), tmp_path / "o")
    last = interrupted_run / "checkpoints" / "last.pt"
    own_config = torch.load(last, weights_only=True)["config"]
    foreign = torch.load(other / "checkpoints" / "last.pt", weights_only=True)
    torch.save(foreign, last)
    line = cli_error("train", "--resume", str(interrupted_run))  # it knows its run: refused as such
    assert line.startswith(f"error: {last}: checkpoint belongs to another run: it was written by")
    allow = "--allow-foreign-checkpoint"  # overridden: the config and the weights are still checked
    line = cli_error("train", "--resume", str(interrupted_run), allow)
    assert "config.yaml: model.hidden_size: cannot change when resuming (5 in the checkpoint" in line
    foreign["config"] = own_config  # a config that agrees, weights that do not
    torch.save(foreign, last)
    line = cli_error("train", "--resume", str(interrupted_run), allow)
    assert line.startswith(f"error: {last}: checkpoint does not match the run's model (size mismatch")


def test_run_being_trained_is_locked(interrupted_run: Path) -> None:
    with runs.RunLock(interrupted_run):
        line = cli_error("train", "--resume", str(interrupted_run))
    assert line == f"error: {interrupted_run}: another rnnlab process is training this run right now"


def test_run_ids_cannot_leave_the_runs_dir(interrupted_run: Path, tmp_path) -> None:
    runs_dir = tmp_path / "elsewhere"
    runs_dir.mkdir()
    (runs_dir / "link").symlink_to(interrupted_run, target_is_directory=True)
    line = cli_error("train", "--resume", "link", "--runs-dir", str(runs_dir))
    assert "link: run id resolves outside the runs directory" in line
    line = cli_error("train", "--resume", "nope", "--runs-dir", str(runs_dir))
    assert "nope: run directory not found (neither a path nor a run id in" in line


def test_config_name_cannot_escape_the_runs_dir(write_config, tmp_path) -> None:
    runs_dir = tmp_path / "deep" / "runs"  # one rule for names (rnnlab/names.py): '/' is refused
    line = cli_error("train", str(write_config({"name": "../../../escape"})), "--runs-dir", str(runs_dir))
    assert "name: invalid run name '../../../escape': must not contain '/'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]
    line = cli_error("train", str(write_config()), "--runs-dir", str(runs_dir), "--name", "a/../../b")
    assert "--name: invalid run name" in line


# ----------------------------------------------------------------------------- divergence


def test_nan_in_epoch_2_stops_as_diverged_keeping_epoch_1(write_config, tmp_path, monkeypatch) -> None:
    calls = {"n": 0}
    real = Sine.loss

    def poisoned(self, model, batch, state=None):  # NaN injection from the 15th step (epoch 2)
        loss, state = real(self, model, batch, state)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] >= 15 else loss), state

    monkeypatch.setattr(Sine, "loss", poisoned)
    with pytest.raises(Diverged) as info:
        train(write_config(), tmp_path / "r")
    run = only_run(tmp_path / "r")
    line = info.value.line()
    assert line.startswith(f"{run}: training diverged at epoch 2, step 4: loss became nan; try a lower "
                           "train.lr (now 0.01) or a smaller train.clip_grad_norm (now 1)")
    assert line.endswith("kept the last good checkpoint (after epoch 1)")
    assert summary(run)["status"] == "diverged" and summary(run)["error"] == line
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert ckpt["trainer"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    assert len(runs.read_jsonl(run / runs.METRICS)) == 1


def test_huge_learning_rate_diverges_with_one_line_and_exit_3(write_config, tmp_path) -> None:
    path = write_config({"model": {"name": "rnn", "nonlinearity": "relu"},
                         "train": {"optimizer": "sgd", "lr": 1e6, "clip_grad_norm": None}})
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'r'}") and "training diverged at epoch 1, step " in line
    assert "gradient clipping (train.clip_grad_norm, e.g. 1.0)" in line
    run = Path(result.stdout.strip().splitlines()[-1])
    assert summary(run)["status"] == "diverged"


# ----------------------------------------------------------------------------- real processes

PROC_CONFIG = {
    "task": {"name": "sine", "mode": "window", "window": 4, "n_points": 300},
    "model": {"name": "gru", "hidden_size": 6},
    "train": {"epochs": 3, "batch_size": 16, "steps_per_epoch": 60, "lr": 0.01, "seed": 3,
              "threads": 1, "log_every": 10, "scheduler": "step"},
    "logging": {"plots": False},
}


@pytest.fixture(scope="module")
def proc_setup(tmp_path_factory) -> tuple[Path, Path]:
    """A config long enough (3 x 60 steps) to stop mid-epoch, and that run left alone."""
    folder = tmp_path_factory.mktemp("proc")
    path = folder / "proc.yaml"
    path.write_text(yaml.safe_dump(PROC_CONFIG))
    return path, train(path, folder / "alone")


def start(config: Path, runs_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "rnnlab", "train", str(config), "--runs-dir",
                             str(runs_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)


def test_sigterm_mid_epoch_then_resume(proc_setup, tmp_path) -> None:
    config, alone = proc_setup
    proc = start(config, tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:  # the plain progress lines: stop during epoch 2
        if line.startswith("epoch 2/3 step 10/60"):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    run = Path(out.strip().splitlines()[-1])
    assert "interrupted: " in err and f"rnnlab train --resume {run}" in err and "Traceback" not in err
    assert summary(run)["status"] == "interrupted"
    progress = torch.load(run / "checkpoints/last.pt", weights_only=True)["progress"]
    assert progress is not None and 10 <= progress["steps"] < 60  # mid-epoch
    resume(run)
    assert_same_results(run, alone)


def test_kill_9_at_a_random_moment_then_resume(proc_setup, tmp_path) -> None:
    config, alone = proc_setup
    proc = start(config, tmp_path)
    last = None
    deadline = time.monotonic() + 60
    while last is None or not last.exists():  # wait for the first checkpoint
        assert proc.poll() is None and time.monotonic() < deadline
        found = list(tmp_path.glob("*/checkpoints/last.pt"))
        last = found[0] if found else None
        time.sleep(0.02)
    time.sleep(float(torch.rand(1)) * 0.3)
    proc.kill()
    proc.communicate(timeout=60)
    run = last.parent.parent
    resume(run) if summary(run)["status"] != "completed" else None
    rows = runs.read_jsonl(run / runs.METRICS)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert_same_results(run, alone)
