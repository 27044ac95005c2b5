"""The device choice, checked on a CPU-only machine: CUDA itself is exercised only where one exists
(see docs/precision.md, the GPU section); here torch.cuda's answers are patched where that is meaningful."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rnnlab.errors import ConfigError
from rnnlab.models.elman import ElmanRNN
from rnnlab.training.runtime import resolve_device

from .test_cli import assert_user_error, cli


def test_auto_picks_cuda_exactly_when_torch_sees_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="'cuda' requested but no CUDA device is available"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only answer")
def test_cuda_on_a_cpu_only_machine_is_one_line_and_writes_nothing(write_config, runs_dir: Path) -> None:
    result = cli("train", str(write_config()), "--runs-dir", str(runs_dir), "--set", "train.device=cuda")
    assert_user_error(result, "train.device", "no CUDA device")
    assert not runs_dir.exists()


def test_elman_leaves_other_devices_to_nn_rnn() -> None:
    """Off the CPU (cuDNN on CUDA) ElmanRNN is nn.RNN itself: shown on the meta device, where only
    nn.RNN's own forward can run (shapes without data)."""
    rnn = ElmanRNN(5, 7, num_layers=2, bidirectional=True, batch_first=True).to("meta")
    out, h_n = rnn(torch.empty(3, 4, 5, device="meta"))
    assert out.device.type == "meta" and out.shape == (3, 4, 14) and h_n.shape == (4, 3, 7)
