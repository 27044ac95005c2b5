from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from typer.testing import CliRunner

from rnnlab.analysis.gradflow import Recorder, Unrolled, first_batch, measure
from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.models import MODELS, build_model
from rnnlab.tasks.base import Batch, Task, TaskSpec
from rnnlab.training.build import build

from .conftest import SINE_TINY

PNG = b"\x89PNG\r\n\x1a\n"


def states(s):
    return s if isinstance(s, tuple) else (s,)


@pytest.mark.parametrize("cls,kwargs", [(nn.LSTM, {}), (nn.GRU, {}), (nn.RNN, {}),
                                        (nn.RNN, {"nonlinearity": "relu"})])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_unrolled_twin_computes_the_same_function(cls, kwargs, bidirectional) -> None:
    torch.manual_seed(0)
    rnn = cls(3, 5, num_layers=2, batch_first=True, bidirectional=bidirectional, **kwargs).double()
    twin = Unrolled(rnn, Recorder())
    x = torch.randn(4, 7, 3, dtype=torch.double)
    h0 = torch.randn(2 * (2 if bidirectional else 1), 4, 5, dtype=torch.double)
    hx = (h0, torch.randn_like(h0)) if cls is nn.LSTM else h0
    for args in ((x,), (x, hx)):
        (a, sa), (b, sb) = rnn(*args), twin(*args)
        assert torch.allclose(a, b)
        assert all(torch.allclose(u, v) for u, v in zip(states(sa), states(sb)))
    packed = pack_padded_sequence(x, torch.tensor([7, 3, 5, 1]), batch_first=True, enforce_sorted=False)
    (a, sa), (b, sb) = rnn(packed), twin(packed)
    unpacked = [pad_packed_sequence(out, batch_first=True)[0] for out in (a, b)]
    assert torch.allclose(*unpacked)
    assert all(torch.allclose(u, v) for u, v in zip(states(sa), states(sb)))


def sine(write_config, extra: dict) -> tuple:
    exp = load_experiment(write_config(extra))
    task, model = build(exp, torch.device("cpu"))
    return exp, task, model


@pytest.mark.parametrize("extra,steps", [
    ({"task": {"mode": "seq2seq", "seq_len": 40, "stride": 20}}, 40),
    ({"task": {"mode": "window", "window": 12}}, 12),
    # a rollout reads the window, then feeds back horizon - 1 predictions through the same layer
    ({"task": {"mode": "rollout", "window": 8, "horizon": 4}}, 8 + 3),
    # an encoder-decoder: 8 encoder steps, then 4 decoder steps
    ({"task": {"mode": "rollout", "window": 8, "horizon": 4},
      "model": {"name": "seq2seq", "cell": "gru", "hidden_size": 8}}, 8 + 4),
])
def test_one_value_per_time_step_and_layer(write_config, extra, steps) -> None:
    extra = {**extra, "model": {**SINE_TINY["model"], "num_layers": 2, **extra.get("model", {})}}
    exp, task, model = sine(write_config, extra)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    norms = measure(task, model, first_batch(exp, task))
    assert sorted(norms) == ["layer 0", "layer 1"]
    assert all(len(values) == steps for values in norms.values())
    assert all(v > 0 and math.isfinite(v) for values in norms.values() for v in values)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # measured on a copy
    assert all(p.grad is None for p in model.parameters())


def test_last_step_gradient_has_its_exact_value(write_config) -> None:
    """Scored at the last step only: dL/dh_T = 2/B (pred - y) w for L = mean (w.h_T + b - y)^2."""
    exp, task, model = sine(write_config, {"task": {"mode": "window", "window": 10}})
    batch = first_batch(exp, task)
    norms = measure(task, model, batch)["layer 0"]
    twin = model.double().eval()
    with torch.no_grad():
        pred, _ = twin(batch.x.double())
    w = twin.head.weight.norm()
    expected = (2 / batch.size * (pred - batch.y.double()).abs().squeeze(1) * w).mean().item()
    assert norms[-1] == pytest.approx(expected, rel=1e-9)


class LongMemory(Task):
    """Synthetic: recall the mean of the first 4 of ``steps`` random inputs, scored at the end."""

    def __init__(self, steps: int, batch: int) -> None:
        self.spec = TaskSpec(input_kind="features", input_size=1, output_size=1, output="last",
                             causal=True, metric="mse", mode="min", window=steps)
        x = torch.randn(batch, steps, 1, generator=torch.Generator().manual_seed(0))
        self.batch = Batch(x, x[:, :4].mean(1))

    def criterion(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(out, batch.y)


def model(name: str, **options) -> nn.Module:
    torch.manual_seed(0)
    return build_model(MODELS.get(name).Options(name=name, hidden_size=16, **options),
                       LongMemory(1, 1).spec)


@pytest.mark.parametrize("source", ["synthetic", "sine"])
def test_vanilla_rnn_gradient_vanishes_orders_of_magnitude_faster_than_lstm(source, write_config) -> None:
    """With its forget gates open (forget_bias 1, the usual LSTM init) the LSTM's cell path
    carries the gradient back; the tanh RNN's shrinks by its Jacobian at every step."""
    if source == "synthetic":
        task = LongMemory(256, 8)
        rnn = measure(task, model("rnn"), task.batch)["layer 0"]
        lstm = measure(task, model("lstm", forget_bias=1.0), task.batch)["layer 0"]
    else:
        extra = {"task": {"mode": "window", "window": 200, "n_points": 1100},
                 "model": {"name": "rnn", "hidden_size": 16}}
        exp, task, rnn_model = sine(write_config, extra)
        batch = first_batch(exp, task, 8)
        rnn = measure(task, rnn_model, batch)["layer 0"]
        extra["model"] = {"name": "lstm", "hidden_size": 16, "forget_bias": 1.0}
        _, _, lstm_model = sine(write_config, extra)
        lstm = measure(task, lstm_model, batch)["layer 0"]
    assert math.log10(lstm[0] / rnn[0]) > 10  # more than ten orders of magnitude apart at t = 0
    assert rnn[0] < 1e-20 < rnn[-1]  # the RNN's gradient at the first step has all but vanished
    # and it decays geometrically: the same number of decades lost per step on both halves
    half = len(rnn) // 2
    first, second = math.log10(rnn[half] / rnn[0]), math.log10(rnn[-1] / rnn[half])
    assert first == pytest.approx(second, rel=0.5)


def test_forget_bias_sets_the_forget_gate_and_is_lstm_only(write_config) -> None:
    lstm = model("lstm", forget_bias=2.0, init="orthogonal")
    b = lstm.rnn.bias_ih_l0 + lstm.rnn.bias_hh_l0
    assert torch.all(b[16:32] == 2.0) and torch.all(b[:16] == 0)
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(write_config({"model": {"name": "gru", "forget_bias": 1}}))])
    assert result.exit_code == 2 and "model.forget_bias: unknown key" in result.output


# ----------------------------------------------------------------------------- the command


def test_gradflow_command_on_configs_and_on_a_run(write_config, tmp_path: Path) -> None:
    runner = CliRunner()
    rnn = write_config({"task": {"mode": "window", "window": 30}, "model": {"name": "rnn"}}, name="rnn")
    lstm = write_config({"task": {"mode": "window", "window": 30}}, name="lstm")
    out = tmp_path / "flow" / "both.png"
    result = runner.invoke(app, ["gradflow", str(rnn), str(lstm), "--steps", "2", "--out", str(out),
                                 "--set", "model.hidden_size=6"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert {(r["label"], r["stage"]) for r in rows} == {("rnn", "init"), ("rnn", "step 2"),
                                                      ("lstm", "init"), ("lstm", "step 2")}
    assert len(rows) == 4 * 30 and {r["t"] for r in rows} == {str(t) for t in range(30)}
    assert "rnn init layer 0: 30 steps" in result.stdout

    run = train_run(load_experiment(lstm), tmp_path / "runs", Reporter(quiet=True))
    result = runner.invoke(app, ["gradflow", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "plots" / "gradflow.png").read_bytes()[:8] == PNG
    rows = list(csv.DictReader((run / "plots" / "gradflow.csv").open()))
    assert {r["stage"] for r in rows} == {"init", "trained"}


def test_gradflow_errors_are_one_line(write_config, tmp_path: Path) -> None:
    runner = CliRunner()
    mlp = write_config(base={**SINE_TINY, "model": {"name": "mlp", "hidden_sizes": [4]}}, name="mlp")
    for args, fragment in ((["gradflow", str(mlp)], "gradflow needs a recurrent model"),
                           (["gradflow", str(tmp_path / "nope.yaml")], "config file not found"),
                           (["gradflow", str(mlp), "--out", str(tmp_path / "x.svg")], "--out")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.svg").exists()
