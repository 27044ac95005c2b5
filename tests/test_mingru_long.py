"""minGRU / minLSTM for long sequences: chrono initialisation of the gate biases, and the recommended
long-sequence recipe (residual pre-norm blocks, a causal conv of 4, mean pooling) under the
conformance checks and with a carried state over variable-length windows."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rnnlab.config.loading import build_experiment
from rnnlab.errors import ConfigError
from rnnlab.models import MODELS, build_model
from rnnlab.models.minrnn import GATES, MinStack, gates
from rnnlab.tasks.base import TaskSpec
from rnnlab.testing import assert_passes, check_model
from rnnlab.training.build import build

FAMILIES = ["mingru", "minlstm"]
CPU = torch.device("cpu")
SPEC = TaskSpec(input_kind="features", input_size=1, output_size=1, output="last", causal=True,
                metric="mse", mode="min", window=300)
RECIPE = {"block": "residual", "conv": 4, "pooling": "mean", "ffn_mult": 0}


def model(family: str, **options: Any) -> Any:
    torch.manual_seed(0)
    return build_model(MODELS.get(family).Options(name=family, **options), SPEC)


def keep_per_step(net: Any, family: str, layer: int = 0) -> torch.Tensor:
    """The fraction of its state each unit keeps per step at a zero input (the bias alone)."""
    rnn = net.rnn.layers[layer]
    bias = rnn.proj.bias.detach().view(rnn.directions, GATES[family], -1)[0]
    a, _ = gates(family, bias[None, None], None, log=False)
    return a[0, 0]


@pytest.mark.parametrize("family", FAMILIES)
def test_chrono_init_spreads_memory_over_2_to_t_max_steps(family: str) -> None:
    net = model(family, hidden_size=4000, chrono_init=1000, num_layers=2)
    for layer in range(2):
        memory = 1 / (1 - keep_per_step(net, family, layer))  # 1 + u, u ~ U[1, T_max - 1]
        u = memory - 1
        assert float(u.min()) >= 1 - 1e-3 and float(u.max()) <= 999 * (1 + 1e-3)
        assert float(u.mean()) == pytest.approx(500, rel=0.03)  # uniform on [1, 999]
        assert float((u < 250).double().mean()) == pytest.approx(249 / 998, abs=0.02)
        bias = net.rnn.layers[layer].proj.bias.detach().view(GATES[family], -1)
        if family == "mingru":
            assert torch.allclose(bias[0], -u.log(), rtol=1e-4)  # z's bias
        else:
            assert torch.allclose(bias[0], u.log(), rtol=1e-4) and torch.equal(bias[1], -bias[0])
        assert float(bias[-1].abs().max()) < 1  # the candidate keeps PyTorch's init
    again = model(family, hidden_size=4000, chrono_init=1000, num_layers=2)
    assert torch.equal(again.rnn.layers[0].proj.bias, net.rnn.layers[0].proj.bias)  # seeded


@pytest.mark.parametrize("family", FAMILIES)
def test_chrono_auto_takes_t_max_from_the_task(family: str) -> None:
    raw = {"task": {"name": "adding", "length": 40, "n_train": 8, "n_val": 8, "n_test": 8},
           "model": {"name": family, "hidden_size": 500, "chrono_init": "auto", "init": "normal"},
           "train": {"seed": 0, "threads": 1}}
    _, net = build(build_experiment(raw), CPU)
    u = 1 / (1 - keep_per_step(net, family)) - 1
    assert float(u.max()) <= 39 * (1 + 1e-3) and float(u.max()) > 30 and float(u.min()) >= 1 - 1e-3


@pytest.mark.parametrize("raw_model,task,message", [
    ({"chrono_init": "auto"}, {"name": "charlm"}, "model.chrono_init: auto takes T_max from the task"),
    ({"chrono_init": 100, "forget_bias": 1.0}, {"name": "adding"}, "model.chrono_init: sets the gate"),
    ({"chrono_init": 1}, {"name": "adding"}, "model.chrono_init: T_max must be >= 2"),
    ({"chrono_init": "long"}, {"name": "adding"}, "model.chrono_init"),
    ({"chrono_init": True}, {"name": "adding"}, "model.chrono_init: must be an integer, not a boolean"),
])
def test_bad_chrono_options_are_config_errors(raw_model: dict, task: dict, message: str) -> None:
    raw = {"task": task, "model": {"name": "mingru", **raw_model}, "train": {"seed": 0}}
    with pytest.raises(ConfigError, match=message):
        build(build_experiment(raw), CPU)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_long_sequence_recipe_passes_the_conformance_checks(family: str) -> None:
    options = {**RECIPE, "chrono_init": 50}
    for task in ("sentiment", "sine", "adding"):  # padding; causality and carried state; last-step
        assert_passes(check_model(family, task=task, options=options))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("form", ["sequential", "fused", "logspace"])
def test_conv_state_carried_past_variable_lengths_continues_each_sequence(family: str, form: str) -> None:
    """A first window whose sequences end at different steps, then a second window from the carried
    state (h and the conv tails): each sequence's outputs are those of one pass over its real steps
    followed by the second window."""
    torch.manual_seed(0)
    net = MinStack(family, 3, 5, 2, False, 0.0, "residual", True, 2, 4, form).double()
    first, second = torch.randn(3, 6, 3, dtype=torch.float64), torch.randn(3, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 4, 2])
    _, state = net(first, None, lengths)
    out, _ = net(second, state)
    for b, n in enumerate(lengths.tolist()):
        whole, _ = net(torch.cat([first[b:b + 1, :n], second[b:b + 1]], 1))
        assert torch.allclose(out[b], whole[0, n:], atol=1e-9, rtol=0)


def test_shipped_pixel_blocks_config_trains_on_the_loader(tmp_path) -> None:
    import math

    from rnnlab.common.console import Reporter
    from rnnlab.config.loading import load_experiment
    from rnnlab.training.trainer import Trainer

    from .conftest import CONFIGS
    from .mnist_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "data", n_train=60, n_test=20)
    exp = load_experiment(CONFIGS / "mingru_pixel_mnist_blocks.yaml", [
        "train.epochs=1", "train.steps_per_epoch=1", "train.batch_size=8", "train.threads=1",
        "task.val_size=20", f"data.root={tmp_path / 'data'}", "data.download=false"])
    task, net = build(exp, CPU)
    u = 1 / (1 - keep_per_step(net, "mingru")) - 1
    assert 700 < float(u.max()) <= 783 * (1 + 1e-3)  # chrono_init: auto = the 784 steps
    row = Trainer(exp, task, net, tmp_path, Reporter(quiet=True), CPU, 1).train_epoch()
    assert math.isfinite(row["train_loss"])
