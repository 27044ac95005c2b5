"""Precision by capability: bf16 only where the CPU computes it natively (and the model's kernels
run in it), one line for a precision that cannot run, and the AVX2 path exercised on any CPU by
capping oneDNN (``ONEDNN_MAX_CPU_ISA=AVX2``) in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.errors import ConfigError
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs
from rnnlab.training import precision
from rnnlab.training.build import build
from rnnlab.training.evaluation import evaluate_run
from rnnlab.training.precision import Precision, check_precision, native_bf16, probe_bf16, resolve_precision

from .conftest import REPO, SINE_TINY

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
AVX2_ONLY = ("avx2",)
BF16_CPU = ("avx2", "avx512f", "avx512_bf16")
NEEDS_NATIVE = pytest.mark.skipif(not native_bf16(), reason="needs a CPU with native bfloat16 "
                                  "(AVX512-BF16 or AMX); elsewhere oneDNN has no bf16 LSTM")


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch):
    """cpu(features, cap=None): pretend the CPU reports ``features`` (and oneDNN is capped)."""

    def pretend(features: tuple[str, ...], cap: str | None = None) -> None:
        monkeypatch.setattr(precision, "cpu_features", lambda: features)
        # patched, not set in the environment: oneDNN reads ONEDNN_MAX_CPU_ISA once per process,
        # at its first primitive, and the rest of the suite must not inherit a cap
        monkeypatch.setattr(precision, "onednn_isa_cap", lambda: cap and cap.upper())

    return pretend


def model(write_config, name: str, **options) -> nn.Module:
    base = {"name": name, **({"hidden_sizes": [8]} if name == "mlp" else {"hidden_size": 8})}
    exp = load_experiment(write_config(base={**SINE_TINY, "model": {**base, **options}}, name=name))
    return build(exp, CPU)[1]


def test_cpu_features_are_read_from_the_cpu() -> None:
    features = precision.cpu_features()
    assert set(features) <= set(precision.ISA_FLAGS)
    info = precision.isa_summary()
    assert info["isa"] == list(features) and isinstance(info["native_bf16"], bool)


def test_native_bf16_needs_the_isa_and_no_onednn_cap_below_it(cpu) -> None:
    cpu(AVX2_ONLY)
    assert not native_bf16()
    cpu(BF16_CPU)
    assert native_bf16()
    cpu(("avx2", "amx_bf16", "amx_tile"))
    assert native_bf16()
    for cap, native in (("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("ALL", True)):
        cpu(BF16_CPU, cap)
        assert native_bf16() is native, cap


def test_auto_picks_bf16_only_where_native_and_measured_faster(cpu, write_config) -> None:
    lstm, gru, mlp = (model(write_config, n) for n in ("lstm", "gru", "mlp"))
    assert resolve_precision("fp32", CPU, lstm) == "fp32"
    assert resolve_precision("auto", CUDA, lstm) == "fp32"
    cpu(AVX2_ONLY)
    assert [resolve_precision("auto", CPU, m) for m in (lstm, gru, mlp)] == ["fp32"] * 3
    cpu(BF16_CPU, "AVX2")
    assert resolve_precision("auto", CPU, lstm) == "fp32"
    if precision.probe_bf16(lstm) is None:  # the kernel really runs in bf16 here
        cpu(BF16_CPU)
        assert resolve_precision("auto", CPU, lstm) == "bf16"
        assert resolve_precision("auto", CPU, gru) == resolve_precision("auto", CPU, mlp) == "fp32"


def test_explicit_bf16_without_native_support_is_one_config_error(cpu, write_config) -> None:
    lstm = model(write_config, "lstm")
    cpu(AVX2_ONLY)
    with pytest.raises(ConfigError) as err:
        check_precision("bf16", CPU, lstm)
    assert str(err.value).startswith("train.precision: bf16 needs native bfloat16")
    assert "AVX512-BF16" in str(err.value) and "'auto'" in str(err.value) and "\n" not in str(err.value)
    cpu(BF16_CPU, "AVX2")
    with pytest.raises(ConfigError, match="ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN"):
        check_precision("bf16", CPU)
    assert check_precision("auto", CPU, lstm) == "fp32"


def test_a_kernel_that_fails_the_probe_is_refused_and_auto_falls_back(cpu, write_config, monkeypatch) -> None:
    cpu(BF16_CPU)
    lstm = model(write_config, "lstm", hidden_size=6)  # a shape no other test probes
    monkeypatch.setattr(precision, "_PROBES", {})
    monkeypatch.setattr(precision, "_probe_kernel", lambda kernel: "could not create a primitive descriptor")
    with pytest.raises(ConfigError, match="bf16 cannot run this model's kernels here \\(LSTM: could not"):
        check_precision("bf16", CPU, lstm)
    assert resolve_precision("auto", CPU, lstm) == "fp32"


def test_the_probe_says_what_a_real_bf16_training_step_does() -> None:
    """probe_bf16 is None exactly when an LSTM step under CPU bf16 autocast succeeds."""
    lstm = nn.LSTM(3, 5, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.randn(4, 7, 3))
        out.float().sum().backward()
        works = True
    except RuntimeError:
        works = False
    assert (probe_bf16(lstm) is None) is works
    assert all(p.grad is None or p.grad.abs().sum() > 0 for p in lstm.parameters())


def test_cli_bf16_on_a_cpu_without_it_is_one_line_and_writes_nothing(cpu, write_config, runs_dir) -> None:
    cpu(AVX2_ONLY)
    result = CliRunner().invoke(app, ["train", str(write_config()), "--runs-dir", str(runs_dir),
                                      "--set", "train.precision=bf16"])
    assert result.exit_code == 2
    assert result.output.startswith("error: train.precision: bf16 needs native bfloat16")
    assert len(result.output.strip().splitlines()) == 1 and not runs_dir.exists()


def _capped(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rnnlab", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300)


def test_oneDNN_capped_to_avx2_refuses_bf16_and_auto_trains_fp32(write_config, tmp_path: Path) -> None:
    """The AVX2 machine's path, for real, on any CPU: oneDNN capped in a fresh process."""
    config, runs_dir = write_config({"train": {"epochs": 1}}), tmp_path / "runs"
    refused = _capped("train", str(config), "--runs-dir", str(runs_dir), "--set", "train.precision=bf16",
                      cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    lines = (refused.stdout + refused.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: train.precision: bf16 needs native bfloat16")
    assert "Traceback" not in refused.stderr and not runs_dir.exists()
    auto = _capped("train", str(config), "--runs-dir", str(runs_dir), "--quiet",
                   "--set", "train.precision=auto", cwd=tmp_path)
    assert auto.returncode == 0, auto.stderr
    summary = json.loads((Path(auto.stdout.strip().splitlines()[-1]) / runs.SUMMARY).read_text())
    assert summary["precision"] == "fp32" and summary["native_bf16"] is False
    assert summary["onednn_max_cpu_isa"] == "AVX2"


def test_bf16_autocasts_the_forward_pass_only() -> None:
    layer = torch.nn.Linear(4, 3)
    with Precision("bf16", CPU).autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with Precision("fp32", CPU).autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    assert layer.weight.dtype == torch.float32  # master weights stay fp32


@NEEDS_NATIVE
def test_bf16_run_trains_reproducibly_and_eval_matches(write_config, runs_dir: Path) -> None:
    path = write_config({"train": {"precision": "bf16", "epochs": 2}})

    def run() -> Path:
        return train_run(load_experiment(path), runs_dir, Reporter(quiet=True))

    first, second = run(), run()
    summary = json.loads((first / runs.SUMMARY).read_text())
    assert summary["status"] == "completed" and summary["precision"] == "bf16"
    timing = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in runs.read_jsonl(d / runs.METRICS)]
            for d in (first, second)]
    assert rows[0] == rows[1]
    assert evaluate_run(first, "test") == summary["test"]  # evaluation is fp32, as in the run


def test_unknown_precision_is_a_config_error(write_config) -> None:
    with pytest.raises(ConfigError, match="train.precision: must be one of"):
        load_experiment(write_config({"train": {"precision": "fp8"}}))
