"""minGRU / minLSTM: the scan forms agree, state and padding semantics, every task trains,
generation, gradflow, init and config checks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnlab.analysis.gradflow import measure
from rnnlab.common.console import Reporter
from rnnlab.config.loading import build_experiment
from rnnlab.errors import ConfigError
from rnnlab.execution.inference import generate_run
from rnnlab.execution.lifecycle import train_run
from rnnlab.models import MODELS, build_model
from rnnlab.models.minrnn import MinStack
from rnnlab.models.scan import fused
from rnnlab.tasks.base import TaskSpec
from rnnlab.training.build import build
from rnnlab.training.trainer import Trainer

from .mnist_data import write_tiny_mnist

FAMILIES = ["mingru", "minlstm"]
FORMS = ["fused", "logspace"]
CPU = torch.device("cpu")
# (block, conv, bidirectional, layers)
SHAPES = [("plain", 0, False, 2), ("plain", 0, True, 2), ("residual", 3, False, 2), ("residual", 0, True, 1)]


def stack(family: str, block: str, conv: int, bidirectional: bool, layers: int, form: str) -> MinStack:
    torch.manual_seed(0)
    return MinStack(family, 3, 5, layers, bidirectional, 0.0, block, True, 2, conv, form).double()


def set_form(module: MinStack, form: str) -> None:
    for layer in module.layers:
        layer.form = form


def flat_state(state: Any) -> torch.Tensor:
    return torch.cat([s.flatten() for s in state]) if isinstance(state, tuple) else state.flatten()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forms_agree_in_float64_with_initial_state_and_lengths(family: str, shape: tuple) -> None:
    """fused and logspace match sequential: outputs, final states and every parameter gradient."""
    net = stack(family, *shape, "sequential")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 9, 3, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([9, 4, 6, 1])
    with torch.no_grad():  # a state carried from an earlier window (positive, as every state is)
        _, carried = net(torch.randn(4, 5, 3, generator=gen, dtype=torch.float64))
    results = {}
    for form in ["sequential", *FORMS]:
        set_form(net, form)
        net.zero_grad()
        out, state = net(x, carried, lengths)
        mask = (torch.arange(9)[None, :] < lengths[:, None])[..., None]
        (out * mask).square().sum().add(flat_state(state).sum()).backward()
        grads = torch.cat([p.grad.flatten() for p in net.parameters()])
        results[form] = (out * mask, flat_state(state), grads)
    for form in FORMS:
        for got, want in zip(results[form], results["sequential"]):
            assert torch.allclose(got, want, atol=1e-6, rtol=0), form


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("form", ["sequential", *FORMS])
def test_padded_steps_leave_the_state_and_the_reverse_start_unchanged(family: str, form: str) -> None:
    net = stack(family, "plain", 2, True, 2, form)
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    alone_out, alone_state = net(x[1:, :5])
    padded = x.clone()
    padded[1, 5:] = 100.0  # garbage in the padding
    out, state = net(padded, None, torch.tensor([8, 5]))
    assert torch.allclose(out[1, :5], alone_out[0], atol=1e-9, rtol=0)
    assert torch.allclose(sample_state(state, 1), sample_state(alone_state, 0), atol=1e-9, rtol=0)


def sample_state(state: tuple, b: int) -> torch.Tensor:
    """One sequence's state: h (layers * dirs, B, H) and the conv tails (B, k - 1, C)."""
    return torch.cat([state[0][:, b].flatten(), *(tail[b].flatten() for tail in state[1:])])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("form", ["sequential", *FORMS])
def test_a_carried_state_continues_the_sequence_exactly(family: str, form: str) -> None:
    """Windows with the state carried (truncated BPTT, generation one step at a time) compute what
    the whole sequence does, the causal convolution's tail included."""
    net = stack(family, "residual", 3, False, 2, form)
    x = torch.randn(3, 12, 3, dtype=torch.float64)
    whole, final = net(x)
    first, state = net(x[:, :7])
    second, state = net(x[:, 7:11], state)
    last, state = net(x[:, 11:], state)  # one step: the sequential form
    assert torch.allclose(torch.cat([first, second, last], 1), whole, atol=1e-9, rtol=0)
    assert torch.allclose(flat_state(state), flat_state(final), atol=1e-9, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_hand_written_backward_passes_gradcheck(family: str) -> None:
    gen = torch.Generator().manual_seed(0)
    gates = 2 if family == "mingru" else 3
    pre = tuple(torch.randn(5, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
                for _ in range(gates))
    h0 = torch.rand(2, 3, generator=gen, dtype=torch.float64).add(0.1).requires_grad_()
    mask = (torch.arange(5)[:, None] < torch.tensor([5, 3])[None, :])[..., None]

    def both(h0: torch.Tensor, *pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return fused(family, pre, mask, h0)

    assert torch.autograd.gradcheck(both, (h0, *pre))
    assert torch.autograd.gradcheck(lambda *pre: fused(family, pre, None, None)[0], pre)


# ----------------------------------------------------------------------------- models on tasks

SPEC = TaskSpec(input_kind="tokens", input_size=30, output_size=3, output="last", causal=False,
                metric="accuracy", mode="max")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("options", [{"pooling": "last", "bidirectional": True},
                                     {"pooling": "mean", "block": "residual", "conv": 3},
                                     {"pooling": "last", "block": "residual", "bidirectional": True}])
def test_prediction_does_not_depend_on_batch_padding(family: str, options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    opts = MODELS.get(family).Options(name=family, hidden_size=8, embedding_dim=6, num_layers=2,
                                      dropout=0.3, **options)
    model = build_model(opts, SPEC).eval()
    short = torch.randint(2, 30, (1, 4))
    batch = torch.zeros(3, 11, dtype=torch.int64)
    batch[0, :4], batch[1:] = short[0], torch.randint(2, 30, (2, 11))
    with torch.no_grad():
        alone = model(short, torch.tensor([4]))[0]
        batched = model(batch, torch.tensor([4, 11, 7]))[0]
        naive = model(batch)[0]
    assert torch.allclose(alone[0], batched[0], atol=1e-5, rtol=0)
    assert not torch.allclose(alone[0], naive[0], atol=1e-4)


def train_steps(raw: dict[str, Any], tmp_path: Path, steps: int = 2) -> dict[str, Any]:
    exp = build_experiment(raw)
    task, net = build(exp, CPU)
    return Trainer(exp, task, net, tmp_path, Reporter(quiet=True), CPU, 1).train_epoch()


def base(task: dict[str, Any], model: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"task": task, "model": {"hidden_size": 8, **model},
            "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "lr": 0.01, "seed": 0,
                      "threads": 1}, "logging": {"plots": False}, **extra}


TASKS = {
    "mnist rows": ({"name": "mnist", "val_size": 20}, {}),
    "mnist pixels permuted": ({"name": "mnist", "val_size": 20, "sequence": "pixels", "permute": True}, {}),
    "sentiment": ({"name": "sentiment"}, {"embedding_dim": 8, "bidirectional": True}),
    "sine window": ({"name": "sine", "mode": "window", "window": 6, "n_points": 200}, {}),
    "sine seq2seq": ({"name": "sine", "mode": "seq2seq", "n_points": 200, "seq_len": 30},
                     {"block": "residual"}),
    "sine rollout": ({"name": "sine", "mode": "rollout", "window": 6, "horizon": 3, "n_points": 200},
                     {"conv": 2}),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_trains(family: str, name: str, tmp_path: Path) -> None:
    task, model = TASKS[name]
    extra = {}
    if task["name"] == "mnist":
        write_tiny_mnist(tmp_path / "data", n_train=60, n_test=20)
        extra = {"data": {"root": str(tmp_path / "data"), "download": False}}
    row = train_steps(base(task, {"name": family, **model}, **extra), tmp_path)
    assert math.isfinite(row["train_loss"]) and row["steps"] == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_charlm_run_trains_and_generates(family: str, tmp_path: Path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text("ROMEO: but soft, what light through yonder window breaks? " * 40)
    raw = base({"name": "charlm", "bptt": 16, "batching": "sequential", "samples": 1, "sample_length": 10},
               {"name": family, "embedding_dim": 8, "block": "residual", "conv": 3, "num_layers": 2},
               data={"path": str(text)})
    raw["train"]["steps_per_epoch"] = 3
    run = train_run(build_experiment(raw), tmp_path / "runs", Reporter(quiet=True))
    out = generate_run(run, "ROMEO:", 25, temperature=0.8, seed=1)
    assert out.startswith("ROMEO:") and len(out) == 31
    assert generate_run(run, "ROMEO:", 25, temperature=0.8, seed=1) == out


def test_bidirectional_is_refused_on_causal_tasks() -> None:
    raw = base({"name": "sine", "mode": "seq2seq"}, {"name": "mingru", "bidirectional": True})
    with pytest.raises(ConfigError, match="model.bidirectional: not allowed"):
        build(build_experiment(raw), CPU)


@pytest.mark.parametrize("model,message", [
    ({"conv": 1}, "model.conv: a kernel of 1"),
    ({"block": "stacked"}, "model.block"),
    ({"scan": "fast"}, "model.scan"),
])
def test_bad_options_are_config_errors(model: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_experiment(base({"name": "sine", "mode": "window"}, {"name": "mingru", **model}))


# ----------------------------------------------------------------------------- init, gradflow

LM_SPEC = TaskSpec(input_kind="features", input_size=1, output_size=1, output="last", causal=True,
                   metric="mse", mode="min")


def test_forget_bias_and_init_keep_norms() -> None:
    gru = build_model(MODELS.get("mingru").Options(name="mingru", hidden_size=4, forget_bias=2.0,
                                                   init="normal", block="residual"), LM_SPEC)
    lstm = build_model(MODELS.get("minlstm").Options(name="minlstm", hidden_size=4, forget_bias=2.0),
                       LM_SPEC)
    assert torch.all(gru.rnn.layers[0].proj.bias[:4] == -2.0)  # z's bias: 1 - z starts open
    assert torch.all(gru.rnn.layers[0].proj.bias[4:] == 0.0)
    assert torch.all(gru.rnn.norms1[0].weight == 1.0)  # init: normal leaves the norms alone
    assert torch.all(lstm.rnn.layers[0].proj.bias[:4] == 2.0)
    assert not torch.all(lstm.rnn.layers[0].proj.bias[4:8] == 2.0)


class Memory:
    """The task interface gradflow needs: a loss reading the first steps of a long sequence."""

    spec = LM_SPEC

    def __init__(self) -> None:
        self.x = torch.randn(4, 40, 1, generator=torch.Generator().manual_seed(0))

    def loss(self, model: Any, batch: Any, state: Any = None) -> tuple[torch.Tensor, Any]:
        out, state = model(batch.x, batch.lengths, state)
        return (out - batch.x[:, :3].mean(1)).square().mean(), state


@pytest.mark.parametrize("family", FAMILIES)
def test_gradflow_measures_every_step_of_every_layer(family: str) -> None:
    from rnnlab.tasks.base import Batch

    task = Memory()
    spec = TaskSpec(**{**LM_SPEC.__dict__, "causal": False})
    model = build_model(MODELS.get(family).Options(name=family, hidden_size=6, num_layers=2,
                                                   bidirectional=True, forget_bias=3.0), spec)
    norms = measure(task, model, Batch(task.x, task.x[:, 0], torch.tensor([40, 30, 20, 40])))  # type: ignore[arg-type]
    assert sorted(norms) == ["layer 0", "layer 0 reverse", "layer 1", "layer 1 reverse"]
    assert all(len(v) == 40 for v in norms.values())
    assert all(math.isfinite(v) and v > 0 for v in norms["layer 0"])
    # with the gate open, the gradient reaches the first steps
    assert norms["layer 0"][0] > 1e-3 * max(norms["layer 0"])
    assert all(m.recorder is None for m in model.rnn.layers)  # the model is left as it was


def test_a_run_reloads_from_its_own_config(tmp_path: Path) -> None:
    """The run's config.yaml writes every option out; eval rebuilds the same model from it."""
    import json

    from rnnlab.rundir import files as runs
    from rnnlab.training.evaluation import evaluate_run

    write_tiny_mnist(tmp_path / "data", n_train=60, n_test=20)
    raw = base({"name": "mnist", "val_size": 20}, {"name": "minlstm", "num_layers": 2, "conv": 2},
               data={"root": str(tmp_path / "data"), "download": False})
    run = train_run(build_experiment(raw), tmp_path / "runs", Reporter(quiet=True))
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert summary["status"] == "completed"
    assert evaluate_run(run, "test") == summary["test"]


@pytest.mark.parametrize("name", ["mingru_pixel_mnist", "mingru_permuted_mnist", "lstm_pixel_mnist"])
def test_shipped_pixel_configs_train_on_the_loader(name: str, tmp_path: Path) -> None:
    from rnnlab.config.loading import load_experiment

    from .conftest import CONFIGS

    write_tiny_mnist(tmp_path / "data", n_train=60, n_test=20)
    exp = load_experiment(CONFIGS / f"{name}.yaml", [
        "train.epochs=1", "train.steps_per_epoch=1", "train.batch_size=8", "train.threads=1",
        "task.val_size=20", f"data.root={tmp_path / 'data'}", "data.download=false"])
    assert exp.task.sequence == "pixels"
    task, net = build(exp, CPU)
    row = Trainer(exp, task, net, tmp_path, Reporter(quiet=True), CPU, 1).train_epoch()
    assert math.isfinite(row["train_loss"])


def test_shipped_shakespeare_config_validates() -> None:
    from rnnlab.config.loading import load_experiment

    from .conftest import CONFIGS

    exp = load_experiment(CONFIGS / "mingru_shakespeare.yaml")
    assert exp.model.block == "residual" and exp.task.name == "charlm"
