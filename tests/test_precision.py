from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rnnlab import runs
from rnnlab.config import load_experiment
from rnnlab.errors import ConfigError
from rnnlab.precision import Precision, resolve_precision
from rnnlab.progress import Reporter
from rnnlab.train import evaluate_run, train_run

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_means_bf16_only_on_cpus_with_native_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("auto", CUDA) == "fp32"
    for bf16, amx, expected in ((True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert resolve_precision("auto", CPU) == expected


def test_bf16_autocasts_the_forward_pass_only() -> None:
    layer = torch.nn.Linear(4, 3)
    with Precision("bf16", CPU).autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with Precision("fp32", CPU).autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    assert layer.weight.dtype == torch.float32  # master weights stay fp32


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
