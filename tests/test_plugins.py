"""Plugins: users' own models, optimizers and schedulers enter through a config's ``plugins:`` list
(or an entry point), get every rnnlab feature, and runs record exactly which code they used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import rnnlab

from .conftest import REPO, SINE_TINY
from .test_cli import assert_user_error, cli

EXAMPLE = REPO / "examples" / "custom_cell"

PLUGIN = '''
import torch
from torch import nn
import rnnlab
from rnnlab.models.recurrent import Recurrent


class TanhCore(nn.Module):
    """A hand-written one-layer tanh RNN core (x, lengths, state) -> (out, h_n)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.rec = nn.Linear(hidden_size, hidden_size, bias=False)
        self.recorder = None

    def forward(self, x, lengths, state):
        h = x.new_zeros(x.shape[0], self.rec.in_features) if state is None else state[0]
        real = None if lengths is None else torch.arange(x.shape[1])[None] < lengths[:, None]
        hs = []
        for t in range(x.shape[1]):
            new = torch.tanh(self.inp(x[:, t]) + self.rec(h))
            h = new if real is None else torch.where(real[:, t, None], new, h)
            hs.append(h)
        if self.recorder is not None:
            self.recorder.keep_states("layer 0", hs, real, None)
        return torch.stack(hs, 1), h.unsqueeze(0)


@rnnlab.register_model("tanhcell", "a test plugin's own cell")
class TanhCell(Recurrent):
    def build_core(self, input_size, options):
        return TanhCore(input_size, options.hidden_size)


@rnnlab.register_optimizer("plain_sgd", "SGD without momentum (a test plugin)")
def plain_sgd(params, cfg):
    return torch.optim.SGD(params, lr=cfg.lr)


@rnnlab.register_scheduler("halve", "halve lr every epoch (a test plugin)", options=("gamma",))
def halve(cfg, optimizer, total_steps, mode):
    return torch.optim.lr_scheduler.StepLR(optimizer, 1, cfg.scheduler.gamma or 0.5)
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "myplugin.py").write_text(PLUGIN)
    return folder


def plugin_config(folder: Path, **train) -> Path:
    cfg = {**SINE_TINY, "plugins": ["myplugin.py"], "model": {"name": "tanhcell", "hidden_size": 6},
           "train": {**SINE_TINY["train"], **train}}
    path = folder / f"cfg_{len(list(folder.glob('cfg_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_plugin_model_trains_evaluates_and_is_recorded(plugin_dir: Path, tmp_path: Path) -> None:
    config = plugin_config(plugin_dir, optimizer="plain_sgd", scheduler="halve")
    result = cli("train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert result.exit_code == 0, result.output
    run = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run / "summary.json").read_text())
    (record,) = [r for r in summary["plugins"] if r["file"].endswith("myplugin.py")]
    assert record["file"] == str((plugin_dir / "myplugin.py").resolve()) and len(record["sha256"]) == 64
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["plugins"] == [str((plugin_dir / "myplugin.py").resolve())]  # found from anywhere
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # the plugin's schedule (lr after each epoch)
    assert [round(r["lr"], 6) for r in rows] == [0.005, 0.0025, 0.00125]
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "eval", str(run), "--json"], capture_output=True,
                          text=True, cwd=tmp_path)  # another directory, a fresh process
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])["metrics"]
    assert metrics["mse"] == pytest.approx(summary["test"]["mse"])


def test_a_changed_or_missing_plugin_is_one_line(plugin_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "myplugin.py").write_text(PLUGIN.replace("tanhcell", "tanhcell2").replace("plain_sgd", "sgd2")
                                        .replace('"halve"', '"halve2"'))
    cfg = {**SINE_TINY, "plugins": ["myplugin.py"], "model": {"name": "tanhcell2", "hidden_size": 4}}
    (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = rnnlab.train(folder / "c.yaml", runs_dir=tmp_path / "runs").path
    (folder / "myplugin.py").write_text((folder / "myplugin.py").read_text() + "\n# edited\n")
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "eval", str(run)], capture_output=True, text=True)
    assert proc.returncode == 2 and "has changed since this run was trained" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    (folder / "myplugin.py").unlink()
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "eval", str(run)], capture_output=True, text=True)
    assert proc.returncode == 2 and "plugin file not found" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("body, fragment", [
    ("raise RuntimeError('boom')\n", "failed to import (broken.py:1): RuntimeError: boom"),
    ("import rnnlab\n@rnnlab.register_model('lstm')\nclass X: pass\n", "'lstm' registered twice"),
])
def test_a_broken_plugin_is_one_line(tmp_path: Path, body: str, fragment: str) -> None:
    (tmp_path / "broken.py").write_text(body)
    cfg = {**SINE_TINY, "plugins": ["broken.py"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert_user_error(cli("train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs")),
                      "plugins[0]", fragment)
    assert not (tmp_path / "runs").exists()


def test_a_missing_plugin_module_and_unknown_names(tmp_path: Path, write_config) -> None:
    assert_user_error(cli("train", str(write_config({"plugins": ["no_such_plugin_mod"]}))),
                      "plugin module 'no_such_plugin_mod' not found")
    assert_user_error(cli("train", str(write_config({"train": {"optimizer": "adamm"}}))),
                      "train.optimizer: must be one of", "got 'adamm'", "did you mean 'adam'")
    assert_user_error(cli("train", str(write_config({"train": {"scheduler": "cosin"}}))),
                      "train.scheduler.name: must be one of", "got 'cosin'", "did you mean 'cosine'")
    assert_user_error(cli("train", str(write_config({"plugins": "x.py"}))), "plugins: must be a list")


def test_list_shows_plugin_entries_and_one_entrys_options(plugin_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich: no wrapping inside the table cells
    plugin = str(plugin_dir / "myplugin.py")
    result = cli("list", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "tanhcell" in line)
    assert f"plugin {Path(plugin).resolve()}" in line
    assert "cosine" in result.output and "plain_sgd" in result.output
    result = cli("list", "lstm")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "model.forget_bias" in line)
    assert "float" in line and "None" in line
    result = cli("list", "halve", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    assert "train.scheduler.gamma" in result.output and "train.scheduler.pct_start" not in result.output
    assert_user_error(cli("list", "lstn"), "no task, model, optimizer or scheduler named 'lstn'",
                      "did you mean 'lstm'")


def test_plugin_cores_get_gradflow(plugin_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.png"
    result = cli("gradflow", str(plugin_config(plugin_dir)), "--out", str(out))
    assert result.exit_code == 0, result.output
    csv = out.with_suffix(".csv").read_text()
    assert "layer 0" in csv


# ----------------------------------------------------------------------------- the shipped example


def example_config(tmp_path: Path, epochs: int = 2, **extra) -> Path:
    cfg = yaml.safe_load((EXAMPLE / "indrnn_sine.yaml").read_text())
    cfg["plugins"] = [str(EXAMPLE / "indrnn.py")]
    cfg["train"].update(epochs=epochs, threads=1, **extra)
    cfg["logging"] = {"plots": False}
    path = tmp_path / "indrnn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_example_indrnn_trains_and_sweeps_with_two_workers(tmp_path: Path) -> None:
    run = rnnlab.train(EXAMPLE / "indrnn_sine.yaml", overrides=["train.epochs=2"], runs_dir=tmp_path / "r")
    assert run.summary["status"] == "completed" and run.summary["model"] == "indrnn"
    assert run.evaluate() == run.summary["test"]
    sweep = {"name": "ind", "base": str(example_config(tmp_path, epochs=1)),
             "grid": {"model.name": ["indrnn", "lstm"]}}
    result = rnnlab.sweep(sweep, runs_dir=tmp_path / "s", workers=2)
    assert result.status == "completed"
    assert sorted(r.summary["model"] for r in result.runs()) == ["indrnn", "lstm"]


def test_example_indrnn_resumes_after_a_kill(tmp_path: Path) -> None:
    config = example_config(tmp_path, epochs=6, checkpoint_every=3, scheduler="none")
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "train", str(config), "--runs-dir",
                             str(tmp_path / "runs"), "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    last = None
    while time.time() < deadline and proc.poll() is None and last is None:
        found = list((tmp_path / "runs").glob("*/checkpoints/last.pt"))
        last = found[0] if found else None
        time.sleep(0.02)
    assert last is not None, "no checkpoint was written before the run ended"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = last.parents[1]
    resumed = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--resume", str(run), "--quiet"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 6
    assert rnnlab.load_run(run).evaluate() == summary["test"]


def test_example_indrnn_passes_rnnlab_check() -> None:
    result = cli("check", "indrnn", "--plugin", str(EXAMPLE / "indrnn.py"), "--task", "sine")
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("indrnn: ") and " 0 failed" in last, last
