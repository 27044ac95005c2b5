"""Issue 16, one test (or more) per class of hostile input: parser and process limits, silent
coercion, disk full, signals at any instant, run files of the wrong shape, foreign checkpoints,
undeclared encodings, messages that crash, crawling thread counts, run names."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common import safeio, signals
from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs
from rnnlab.tasks.sine import Sine
from rnnlab.training.runtime import available_cores

from .conftest import SINE_TINY, deep_merge

runner = CliRunner()
TINY = deep_merge(SINE_TINY, {"train": {"epochs": 2}})


def one_line(result: Any, code: int = 2) -> str:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def write(tmp_path: Path, cfg: dict[str, Any] | None = None, text: str | bytes | None = None,
          name: str = "c.yaml") -> Path:
    path = tmp_path / name
    if text is None:
        text = yaml.safe_dump(cfg if cfg is not None else TINY)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def train(tmp_path: Path, *args: str, cfg: dict[str, Any] | None = None, text: str | None = None) -> Any:
    return runner.invoke(app, ["train", str(write(tmp_path, cfg, text)), "--runs-dir",
                               str(tmp_path / "runs"), "-q", *args])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("two")
    path = write(folder)
    a = train_run(load_experiment(path, name="a"), folder / "runs", Reporter(quiet=True))
    b = train_run(load_experiment(path, name="b"), folder / "runs", Reporter(quiet=True))
    return a, b


@pytest.fixture
def copies(two_runs: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    out = []
    for run in two_runs:
        shutil.copytree(run, tmp_path / "runs" / run.name)
        out.append(tmp_path / "runs" / run.name)
    return out[0], out[1]


# ----------------------------------------------------------------------------- 1. limits

@pytest.mark.parametrize("text", [
    "task: " + "[" * 3000 + "]" * 3000 + "\n",
    "task:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
    "task: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path, text: str) -> None:
    line = one_line(train(tmp_path, text=text))
    assert "invalid YAML: nested more than 50 levels deep" in line or "nested too deeply" in line
    assert not (tmp_path / "runs").exists()


def test_integers_beyond_64_bits_are_refused(tmp_path: Path) -> None:
    line = one_line(train(tmp_path, "--set", "train.seed=99999999999999999999999"))
    assert line == (f"error: {tmp_path / 'c.yaml'}: train.seed: must fit in 64 bits (between -2**63 "
                    "and 2**63-1), got 99999999999999999999999")
    line = one_line(train(tmp_path, "--set", "train.epochs=" + "9" * 400))
    assert "train.epochs: must fit in 64 bits" in line and "a 400-digit number" in line


def test_floats_beyond_float32_are_refused(tmp_path: Path) -> None:  # found by benchmarks/fuzz.py
    line = one_line(train(tmp_path, "--set", "model.forget_bias=1.6748760682431708e+44"))
    assert line.endswith("model.forget_bias: must be within float32's range (|x| <= 3.4e38: torch "
                         "computes in it), got 1.67e+44")


@pytest.mark.parametrize("override", ["model.hidden_size=1000000000000", "model.hidden_size=200000"])
def test_models_larger_than_memory_are_refused_before_allocating(tmp_path: Path, override: str) -> None:
    line = one_line(train(tmp_path, "--set", override))
    assert line.startswith("error: config: model.hidden_size: training would need about "), line
    assert "parameters with their gradients and optimizer state); " in line
    assert line.endswith(" of cpu memory is available")
    assert not (tmp_path / "runs").exists()


def test_batches_larger_than_memory_name_the_batch_size(tmp_path: Path, monkeypatch) -> None:
    assert train(tmp_path, "--set", "train.batch_size=100000000000",  # a batch is at most the data
                 "--set", "train.epochs=1").exit_code == 0
    monkeypatch.setattr("rnnlab.training.limits.available_memory", lambda device: 10_000)
    line = one_line(train(tmp_path, "--set", "train.batch_size=64"))
    assert line.startswith("error: config: train.batch_size: training would need about ")
    assert "(activations of a batch of 64 (and eval batches of 256)); 9.8 KiB of cpu memory" in line


def test_data_larger_than_memory_is_one_line(tmp_path: Path) -> None:
    line = one_line(train(tmp_path, "--set", "task.n_points=1000000000000"))
    assert line.startswith("error: config: not enough memory to build the task's data (task sine)")
    assert not (tmp_path / "runs").exists()


def test_bounded_reads_refuse_devices_and_oversized_files(tmp_path: Path, monkeypatch) -> None:
    for what in ("/dev/zero", str(tmp_path)):
        line = one_line(runner.invoke(app, ["predict", str(tmp_path), "--file", what]))
        assert line.startswith(f"error: {what}: ")
        assert "not a regular file" in line or "is a directory" in line
    assert "not a regular file" in one_line(runner.invoke(app, ["train", "/dev/zero"]))
    monkeypatch.setattr(safeio, "MAX_LINE_CHARS", 10)
    monkeypatch.setattr("rnnlab.tasks.sentiment_predict.MAX_LINE_CHARS", 10)
    long = tmp_path / "long.txt"
    long.write_text("short\n" + "x" * 11 + "\n")
    line = one_line(runner.invoke(app, ["predict", str(tmp_path), "--file", str(long)]))
    assert line == (f"error: {long}: line 2 is too long (11 characters; the limit is 10, one "
                    "sentence per line)")
    monkeypatch.setattr("rnnlab.tasks.sentiment_predict.MAX_TEXT_FILE_BYTES", 8)
    line = one_line(runner.invoke(app, ["predict", str(tmp_path), "--file", str(long)]))
    assert line == f"error: {long}: sentence file is too large (18 bytes; the limit is 8 bytes)"


# ----------------------------------------------------------------------------- 2. coercion

@pytest.mark.parametrize("args, cfg, expected", [
    ((), deep_merge(TINY, {"model": {"hidden_size": True}}),
     "model.hidden_size: must be an integer, not a boolean, got true"),
    (("--set", "train.epochs=true"), None, "train.epochs: must be an integer, not a boolean, got true"),
    (("--set", "train.lr=false"), None, "train.lr: must be a number, not a boolean, got false"),
    ((), deep_merge(TINY, {"train": {"lr": "0.1"}}), "train.lr: must be a number, got '0.1'"),
    ((), deep_merge(TINY, {"task": {"window": "4"}}), "task.window: must be an integer, got '4'"),
    (("--set", 'train.batch_size="16"'), None, "train.batch_size: must be an integer, got '16'"),
])
def test_booleans_and_strings_are_not_numbers(tmp_path: Path, args, cfg, expected) -> None:
    assert expected in one_line(train(tmp_path, *args, cfg=cfg))
    assert not (tmp_path / "runs").exists()


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    text = yaml.safe_dump(TINY) + "train: {epochs: 5}\n"
    line = one_line(train(tmp_path, text=text))
    assert "invalid YAML: duplicate key 'train' (each key may appear once in a mapping)" in line
    nested = "task: {name: sine, window: 4, window: 5}\nmodel: {name: lstm}\n"
    assert "duplicate key 'window'" in one_line(train(tmp_path, text=nested))


def test_exponents_without_a_dot_are_numbers(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, deep_merge(TINY, {})), ["train.lr=1e-3", "train.max_loss=2E+3"])
    assert exp.train.lr == 0.001 and exp.train.max_loss == 2000.0


# ----------------------------------------------------------------------------- 3. disk full

def fail_fsync(monkeypatch, after: int, only_new_files: bool = False) -> None:
    """os.fsync raises ENOSPC from call number ``after`` on (on temp files only, if asked: as on
    a disk with no free block, where overwriting allocated blocks still works)."""
    real, calls = os.fsync, [0]

    def fsync(fd: int) -> None:
        calls[0] += 1
        name = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        if calls[0] >= after and (not only_new_files or ".tmp" in name or name.endswith(".jsonl")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_disk_full_before_the_run_exists_leaves_no_skeleton(tmp_path: Path, monkeypatch) -> None:
    fail_fsync(monkeypatch, after=1)
    line = one_line(train(tmp_path))
    assert line.startswith("error: ") and line.endswith(": no space left on device")
    assert list((tmp_path / "runs").iterdir()) == []


def test_disk_full_mid_training_marks_the_run_failed_keeping_its_checkpoint(tmp_path: Path,
                                                                           monkeypatch) -> None:
    cfg = deep_merge(TINY, {"train": {"epochs": 3}})
    fail_fsync(monkeypatch, after=12, only_new_files=True)  # config, summary, epoch 1's files...
    line = one_line(train(tmp_path, cfg=cfg))
    assert line.endswith(": no space left on device"), line
    monkeypatch.undo()
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert summary["status"] == "failed" and "no space left on device" in summary["error"]
    ckpt = runs.load_checkpoint(run / runs.CHECKPOINTS / "last.pt")
    assert ckpt["trainer"]["epoch"] >= 1
    assert not list(run.rglob(".*.tmp"))
    resumed = runner.invoke(app, ["train", "--resume", str(run), "-q"])  # space again: it goes on
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run / runs.SUMMARY).read_text())["status"] == "completed"


# ----------------------------------------------------------------------------- 4. signals

@pytest.fixture
def stop_handlers():
    saved = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    signals.install_stop_handlers()
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_sigterm_during_set_up_leaves_no_run_directory(tmp_path: Path, monkeypatch, stop_handlers) -> None:
    def save_artifacts(self, run_dir: Path) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Sine, "save_artifacts", save_artifacts, raising=False)
    result = train(tmp_path)
    line = one_line(result, 128 + signal.SIGTERM)
    assert line == "interrupted: SIGTERM during set-up; no run directory was left"
    assert list((tmp_path / "runs").iterdir()) == []


def test_sigterm_during_the_final_test_evaluation(tmp_path: Path, monkeypatch, stop_handlers,
                                                  two_runs) -> None:
    real = Sine.final_outputs

    def final_outputs(self, model, run_dir: Path) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Sine, "final_outputs", final_outputs)
    line = one_line(train(tmp_path), 128 + signal.SIGTERM)
    (run,) = (tmp_path / "runs").iterdir()
    assert line.startswith(f"interrupted: {run}: checkpoint saved after epoch 2; continue with")
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert summary["status"] == "interrupted" and "during the final test evaluation" in summary["interrupted"]
    monkeypatch.setattr(Sine, "final_outputs", real)
    resumed = runner.invoke(app, ["train", "--resume", str(run), "-q"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads((run / runs.SUMMARY).read_text())
    alone = json.loads((two_runs[0] / runs.SUMMARY).read_text())
    assert summary["status"] == "completed" and "interrupted" not in summary
    assert summary["test"] == alone["test"]


def test_a_failed_resume_writes_no_file(copies) -> None:
    run = copies[0]
    before = sorted(p.name for p in run.rglob("*"))
    line = one_line(runner.invoke(app, ["train", "--resume", str(run), "--set", "train.lr=0.5"]))
    assert "cannot change when resuming" in line
    assert sorted(p.name for p in run.rglob("*")) == before and not (run / ".lock").exists()


def test_other_commands_stopped_by_a_signal_say_so(copies, monkeypatch, stop_handlers) -> None:
    monkeypatch.setattr("rnnlab.analysis.report.show_lines", lambda run: os.kill(os.getpid(), signal.SIGINT))
    line = one_line(runner.invoke(app, ["show", str(copies[0])]), 130)
    assert line.startswith("interrupted: SIGINT: stopped")


# ----------------------------------------------------------------------------- 5. wrong shapes

def test_runs_lists_the_others_and_names_the_damaged_one(copies) -> None:
    bad, good = copies
    (bad / runs.SUMMARY).write_text(json.dumps({"status": 7, "test": [1]}))
    result = runner.invoke(app, ["runs", str(bad.parent), "--json"])
    assert result.exit_code == 0, result.output
    listed = {r["id"]: r for r in json.loads(result.stdout)["runs"]}
    assert listed[good.name]["status"] == "completed"
    assert listed[bad.name]["status"] == "unreadable"
    table = runner.invoke(app, ["runs", str(bad.parent)])
    assert table.exit_code == 0 and "'status' must be a string, got 7" in table.stdout
    shown = runner.invoke(app, ["show", str(bad)])
    assert shown.exit_code == 0 and "status unreadable (summary.json has the wrong shape" in shown.stdout
    compared = runner.invoke(app, ["compare", str(bad), str(good), "--json"])
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["metrics"]["status"][0].startswith("unreadable")


@pytest.mark.parametrize("row", ['[1, 2]', '{"epoch": "one"}', '{"epoch": 1, "train_loss": "x"}',
                                 '{"epoch": 1}\n\xff\xfe'])
def test_metrics_rows_of_the_wrong_shape(copies, row: str) -> None:
    run = copies[0]
    (run / runs.METRICS).write_bytes(row.encode("latin-1") + b"\n")
    shown = runner.invoke(app, ["show", str(run)])
    assert shown.exit_code == 0 and "last epoch: unreadable" in shown.stdout
    line = one_line(runner.invoke(app, ["plot", str(run)]))
    assert line.startswith(f"error: {run / runs.METRICS}: line ")


# ----------------------------------------------------------------------------- 6. foreign checkpoints

@pytest.mark.parametrize("command", [["eval"], ["plot"], ["eval", "--checkpoint", "last"]])
def test_a_checkpoint_of_another_run_is_refused(copies, command) -> None:
    run, other = copies
    name = "last.pt" if "last" in command else "best.pt"
    shutil.copy(other / runs.CHECKPOINTS / name, run / runs.CHECKPOINTS / name)
    line = one_line(runner.invoke(app, [command[0], str(run), *command[1:]]))
    assert line == (f"error: {run / runs.CHECKPOINTS / name}: checkpoint belongs to another run: it "
                    f"was written by run {other.name!r}, not by this run ({run.name!r}); refused "
                    "(--allow-foreign-checkpoint uses it anyway)")
    allowed = runner.invoke(app, [command[0], str(run), *command[1:], "--allow-foreign-checkpoint"])
    assert allowed.exit_code == 0, allowed.output


def test_edited_config_and_renamed_run(copies) -> None:
    run, _ = copies
    renamed = run.parent / "renamed"
    run.rename(renamed)  # the run id lives in summary.json: still its own
    assert runner.invoke(app, ["eval", str(renamed)]).exit_code == 0
    config = renamed / runs.CONFIG
    config.write_text(config.read_text().replace("sigma: 0.2", "sigma: 0.3"))
    line = one_line(runner.invoke(app, ["eval", str(renamed)]))
    assert "it was trained with another config than this run's config.yaml" in line


def test_checkpoints_without_identity_keep_working(copies) -> None:
    run, _ = copies
    for name in ("best.pt", "last.pt"):  # as written before identities existed
        ckpt = torch.load(run / runs.CHECKPOINTS / name, weights_only=True)
        del ckpt["identity"]
        torch.save(ckpt, run / runs.CHECKPOINTS / name)
    assert runner.invoke(app, ["eval", str(run)]).exit_code == 0
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--set", "train.epochs=3", "-q"])
    assert resumed.exit_code == 0, resumed.output
    assert "identity" in torch.load(run / runs.CHECKPOINTS / "last.pt", weights_only=True)


def test_a_pickled_object_is_one_line_without_torchs_warning(copies) -> None:
    run, _ = copies
    torch.save({"model": Path("/etc/passwd")}, run / runs.CHECKPOINTS / "best.pt")
    line = one_line(runner.invoke(app, ["eval", str(run)]))
    assert "checkpoint holds a pickled object (pathlib.PosixPath), not a state dict; refused" in line


# ----------------------------------------------------------------------------- 7. encodings

def sentiment_config(tmp_path: Path, data: Path, **extra: Any) -> dict[str, Any]:
    return {"task": {"name": "sentiment"}, "model": {"name": "gru", "hidden_size": 4},
            "data": {"path": str(data), **extra}, "train": {"epochs": 1, "threads": 1},
            "logging": {"plots": False}}


@pytest.mark.parametrize("encoding, bom, expected", [
    ("utf-16-le", False,
     "holds NUL bytes like UTF-16-LE text without a byte-order mark; set data.encoding: utf-16-le"),
    ("utf-16-be", False, "set data.encoding: utf-16-be"),
    ("utf-16", True, "starts with a UTF-16 byte-order mark; set data.encoding: utf-16"),
    ("utf-32", True, "starts with a UTF-32 byte-order mark; set data.encoding: utf-32"),
])
def test_text_in_an_undeclared_encoding_names_the_encoding_to_set(tmp_path: Path, encoding: str,
                                                                  bom: bool, expected: str) -> None:
    data = tmp_path / "d.tsv"
    text = "text\tlabel\n" + "".join(f"good {i}\tpos\nbad {i}\tneg\n" for i in range(50))
    data.write_bytes(text.encode(encoding))
    for skip in (False, True):
        line = one_line(train(tmp_path, cfg=sentiment_config(tmp_path, data, skip_bad_lines=skip)))
        assert line == f"error: {data}: not utf-8 text: it {expected.removeprefix('it ')}" or expected in line
    ok = train(tmp_path, cfg=sentiment_config(tmp_path, data, encoding=encoding))
    assert ok.exit_code == 0, ok.output


def test_a_config_in_utf16_is_named(tmp_path: Path) -> None:
    line = one_line(train(tmp_path, text=yaml.safe_dump(TINY).encode("utf-16")))
    assert "not UTF-8 text" in line and "save the config as UTF-8" in line


# ----------------------------------------------------------------------------- 8. messages

def test_sentiment_file_whose_lines_are_all_skipped(tmp_path: Path) -> None:
    data = tmp_path / "d.tsv"
    data.write_text("text\tlabel\n\tpos\n \tneg\n")
    line = one_line(train(tmp_path, cfg=sentiment_config(tmp_path, data, skip_bad_lines=True, header=True)))
    assert line == ("error: data.path: no usable examples in the training data; 2 bad line(s) skipped; "
                    "need examples of 2 or more classes")


# ----------------------------------------------------------------------------- 9. threads

def test_threads_above_the_cores_are_capped_with_a_warning(tmp_path: Path) -> None:
    result = train(tmp_path, "--set", "train.threads=1000", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    cores = available_cores()
    assert (f"warning: train.threads: 1000 is more than the {cores} core(s) available; using {cores}"
            in result.stderr)
    run = Path(result.stdout.strip().splitlines()[-1])
    assert json.loads((run / runs.SUMMARY).read_text())["threads"] == cores


# ----------------------------------------------------------------------------- 10. names

@pytest.mark.parametrize("name", ["a\nb", "tab\there", "nul\x00", "bell\x07", "del\x7f", "a/b", "..", "",
                                  "c1\x85"])
def test_one_rule_for_run_names_everywhere(tmp_path: Path, name: str) -> None:
    for how in ("--name", "--set", "config"):
        if how == "--name":
            result = train(tmp_path, "--name", name)
            where = "--name"
        elif how == "--set":
            result = train(tmp_path, "--set", "name=" + json.dumps(name))
            where = "name"
        else:
            result = train(tmp_path, cfg={**TINY, "name": name})
            where = "name"
        line = one_line(result)
        assert "invalid run name" in line and where in line, (how, line)
    assert not (tmp_path / "runs").exists()


def test_other_characters_stay_in_the_name_and_become_dashes_in_the_directory(tmp_path: Path) -> None:
    result = train(tmp_path, "--name", "my run: é", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    run = Path(result.stdout.strip().splitlines()[-1])
    assert run.name.endswith("_my-run-é") or run.name.endswith("_my-run")
    assert json.loads((run / runs.SUMMARY).read_text())["name"] == "my run: é"


def test_run_records_are_fsynced_and_plots_are_not(tmp_path: Path, monkeypatch) -> None:
    """What must survive a power cut (config, summary, checkpoints, metrics) is fsynced; figures,
    which ``rnnlab plot`` draws again, are written whole (atomically) but not flushed to disk."""
    real, synced = os.fsync, []

    def fsync(fd: int) -> None:
        path = f"/proc/self/fd/{fd}"
        synced.append(os.readlink(path) if os.path.exists(path) else "")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    cfg = deep_merge(TINY, {"logging": {"plots": True}})
    result = runner.invoke(app, ["train", str(write(tmp_path, cfg)), "--runs-dir", str(tmp_path / "runs"),
                                 "-q"])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "plots" / "learning_curves.png").stat().st_size > 0
    names = [Path(p).name for p in synced]
    for record in (".config.yaml.", ".summary.json.", ".best.pt.", ".last.pt."):
        assert any(n.startswith(record) for n in names), (record, names)
    assert any(n == "metrics.jsonl" for n in names)
    assert not any(".png" in n for n in names), names
