"""s4d: the FFT form equals the recurrence (float64, ragged lengths, carried state, final state),
padding invariance, causality, the conformance checks, charlm training and generation, resume and
export."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import build_experiment, load_experiment
from rnnlab.errors import ConfigError
from rnnlab.execution.inference import generate_run
from rnnlab.integrations.export import export_run
from rnnlab.models.ssm import S4DKernel, S4DStack
from rnnlab.models.ssm_ops import causal_conv
from rnnlab.testing import check_model
from rnnlab.testing.findings import assert_passes
from rnnlab.training.build import build
from rnnlab.training.stops import Interrupted
from rnnlab.training.trainer import Trainer

from .conftest import CONFIGS
from .mnist_data import write_tiny_mnist
from .test_resume import Hook, assert_same_results, resume, train

CPU = torch.device("cpu")
runner = CliRunner()


def stack(init: str = "lin", prenorm: bool = False, layers: int = 2, form: str = "fft") -> S4DStack:
    torch.manual_seed(0)
    core = S4DStack(3, 6, layers, 8, init, 0.0, "layer", prenorm, form).double().eval()
    with torch.no_grad():  # a spread of steps, so that slow and fast modes are both exercised
        for block in core.blocks:
            block.ssm.kernel.log_dt.uniform_(-4, 0)
    return core


def run(core: S4DStack, form: str, *args: Any) -> tuple[torch.Tensor, torch.Tensor]:
    core.form = form
    return core(*args)


def real_steps(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    return (torch.arange(steps)[None, :] < lengths[:, None])[..., None]


@pytest.mark.parametrize("init,prenorm", [("lin", False), ("inv", True)])
def test_fft_form_equals_the_recurrence_with_lengths_and_carried_state(init: str, prenorm: bool) -> None:
    core = stack(init, prenorm)
    x = torch.randn(4, 37, 3, dtype=torch.float64)
    lengths = torch.tensor([37, 20, 9, 1])
    s0 = torch.randn(2, 4, 6, 4, 2, dtype=torch.float64)
    for state in (None, s0):
        y_fft, s_fft = run(core, "fft", x, lengths, state)
        y_rec, s_rec = run(core, "recurrent", x, lengths, state)
        mask = real_steps(lengths, 37)
        assert torch.allclose(y_fft * mask, y_rec * mask, atol=1e-6, rtol=0)
        assert s_fft.shape == (2, 4, 6, 4, 2)
        assert torch.allclose(s_fft, s_rec, atol=1e-6, rtol=0)
    assert not torch.allclose(run(core, "fft", x, lengths, s0)[0], run(core, "fft", x, lengths, None)[0])


def test_fft_form_gradients_equal_the_recurrence() -> None:
    """The hand-written backward of the FFT convolution (and of the transposing casts): every
    parameter's and the input's gradient equals autograd's through the recurrence, in float64."""
    core = stack()
    x = torch.randn(3, 21, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([21, 15, 6])
    s0 = torch.randn(2, 3, 6, 4, 2, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 21, 6, dtype=torch.float64) * real_steps(lengths, 21)
    grads = []
    for form in ("fft", "recurrent"):
        y, s = run(core, form, x, lengths, s0)
        loss = (y * weights).sum() + s.square().sum()
        grads.append(torch.autograd.grad(loss, [x, s0, *core.parameters()]))
    for fft, rec in zip(*grads):
        assert torch.allclose(fft, rec, atol=1e-8, rtol=1e-6)
    u = torch.randn(2, 3, 9, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(causal_conv, (u, kernel))


def test_the_kernel_is_the_zero_order_hold_discretisation() -> None:
    torch.manual_seed(0)
    kernel = S4DKernel(2, 4).double()
    dtA, bbar, _ = kernel.discrete()
    A = torch.complex(-kernel.log_A_real.exp(), kernel.A_imag)
    dt = kernel.log_dt.exp()[:, None]
    assert torch.allclose(dtA, dt * A)
    assert torch.allclose(bbar, (torch.exp(dt * A) - 1) / A)  # B = 1
    assert torch.allclose(A.real, torch.full_like(A.real, -0.5))
    assert torch.allclose(A.imag[0], torch.pi * torch.arange(2, dtype=torch.float64))  # S4D-Lin
    assert ((kernel.log_dt.exp() >= 1e-3) & (kernel.log_dt.exp() <= 1e-1)).all()


def test_two_windows_with_the_state_carried_equal_one_pass() -> None:
    core = stack()
    x = torch.randn(3, 30, 3, dtype=torch.float64)
    whole, s_whole = run(core, "fft", x, None, None)
    first, s = run(core, "fft", x[:, :11], None, None)
    second, s_end = run(core, "fft", x[:, 11:], None, s)
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-10)
    assert torch.allclose(s_end, s_whole, atol=1e-10)
    outs, s = [], None  # one step at a time (auto: the recurrence for one-step calls)
    for t in range(30):
        y, s = run(core, "auto", x[:, t:t + 1], None, s)
        outs.append(y)
    assert torch.allclose(torch.cat(outs, 1), whole, atol=1e-10) and torch.allclose(s, s_whole, atol=1e-10)


def test_padding_changes_nothing_and_outputs_are_causal() -> None:
    core = stack()
    x = torch.randn(2, 25, 3, dtype=torch.float64)
    lengths = torch.tensor([25, 12])
    alone, s_alone = run(core, "fft", x[1:, :12], None, None)
    padded = x.clone()
    padded[1, 12:] = 1e3  # garbage in the padding
    batched, s_batched = run(core, "fft", padded, lengths, None)
    assert torch.allclose(batched[1, :12], alone[0], atol=1e-10)
    assert torch.allclose(s_batched[:, 1], s_alone[:, 0], atol=1e-10)
    later = x.clone()
    later[:, 15:] += 1.0
    y, _ = run(core, "fft", x, None, None)
    y_later, _ = run(core, "fft", later, None, None)
    assert torch.allclose(y[:, :15], y_later[:, :15], atol=1e-10)
    assert not torch.allclose(y[:, 15:], y_later[:, 15:])


def test_no_final_state_is_computed_for_last_step_tasks_unless_one_comes_in() -> None:
    core = stack()
    core.keep_state = False
    x = torch.randn(2, 10, 3, dtype=torch.float64)
    assert run(core, "fft", x, None, None)[1] is None
    assert run(core, "fft", x, None, torch.zeros(2, 2, 6, 4, 2, dtype=torch.float64))[1] is not None


def test_conformance_checks_pass_on_per_step_tasks() -> None:
    """``rnnlab check`` on the tasks that carry state (the registry-wide test covers every task)."""
    assert_passes(check_model("s4d", "charlm", {"num_layers": 2, "d_state": 4}, train_run=False))
    assert_passes(check_model("s4d", "sine", {"pooling": "last", "prenorm": True}, train_run=False))


def test_options_are_checked() -> None:
    raw = {"task": {"name": "sine", "mode": "window", "n_points": 200}, "model": {"name": "s4d"}}
    for model, text in (({"bidirectional": True}, "model.bidirectional: s4d is causal only"),
                        ({"d_state": 3}, "model.d_state"), ({"form": "scan"}, "model.form"),
                        ({"dt_min": 0.1, "dt_max": 0.01}, "model.dt_min .0.1. is above model.dt_max"),
                        ({"dt_min": 0}, "model.dt_min")):
        with pytest.raises(ConfigError, match=text):
            build(build_experiment({**raw, "model": {"name": "s4d", **model}}), CPU)


def charlm(tmp_path: Path, **train: Any) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: but soft, what light through yonder window breaks? " * 40)
    path = tmp_path / "s4d_charlm.yaml"
    path.write_text(yaml.safe_dump({
        "task": {"name": "charlm", "bptt": 12, "batching": "sequential", "samples": 1, "sample_length": 20},
        "model": {"name": "s4d", "hidden_size": 8, "embedding_dim": 6, "d_state": 8, "num_layers": 2,
                  "dropout": 0.1},
        "train": {"epochs": 3, "batch_size": 4, "lr": 0.01, "threads": 1, "tokens_per_epoch": 600,
                  "optimizer": "adamw", "weight_decay": 0.05,
                  "scheduler": {"name": "cosine", "warmup_steps": 3}, **train},
        "data": {"path": str(corpus)}, "logging": {"plots": False}}))
    return path


def test_charlm_with_parameter_groups_resumes_exactly_and_generates(tmp_path: Path) -> None:
    """Sequential batching carries the SSM state across batches; the optimizer has the model's
    groups; a run stopped mid-epoch and resumed equals the run left alone, and it generates."""
    path = charlm(tmp_path)
    alone = train(path, tmp_path / "alone")
    with pytest.raises(Interrupted) as info:
        train(path, tmp_path / "cut", Hook(epoch=2, step=7))
    cut = info.value.run_dir
    resume(cut)
    assert_same_results(cut, alone)
    ckpt = torch.load(cut / "checkpoints/last.pt", weights_only=True)
    assert [g["name"] for g in ckpt["optimizer"]["param_groups"]] == ["default", "ssm", "no_decay"]
    assert [g["weight_decay"] for g in ckpt["optimizer"]["param_groups"]] == [0.05, 0.0, 0.0]
    text = generate_run(alone, "ROMEO:", 25, temperature=0.8, seed=1)
    assert text.startswith("ROMEO:") and len(text) == 31
    assert generate_run(alone, "ROMEO:", 25, temperature=0.8, seed=1) == text
    result = runner.invoke(app, ["generate", str(alone), "--prefix", "ROMEO:", "--length", "10",
                                 "--seed", "3"])
    assert result.exit_code == 0, result.output


def test_torchscript_export_streams_and_onnx_is_refused_in_one_line(tmp_path: Path) -> None:
    run = train(charlm(tmp_path, epochs=1), tmp_path / "runs")
    result = export_run(run, "torchscript", out=tmp_path / "lm.pt")
    assert result.inputs == ["x", "h0"] and result.outputs == ["out", "hn"]
    assert any(name.startswith("streamed") for name in result.checks) and result.max_abs_diff < 1e-4
    loaded = torch.jit.load(str(tmp_path / "lm.pt"))
    out, hn = loaded(torch.tensor([[1, 2, 3]]), torch.zeros(2, 1, 8, 4, 2))
    assert out.shape[:2] == (1, 3) and hn.shape == (2, 1, 8, 4, 2)
    before = sorted(p.name for p in run.rglob("*"))
    cli = runner.invoke(app, ["export", str(run), "--format", "onnx"])
    if "needs onnx" not in cli.output:
        assert cli.exit_code == 2
        line = cli.output.strip()
        assert line.startswith("error: --format: model 's4d' cannot be exported to onnx: its FFT "
                               "convolution")
        assert len(line.splitlines()) == 1 and sorted(p.name for p in run.rglob("*")) == before


@pytest.mark.parametrize("name", ["ssm_pixel_mnist", "ssm_permuted_mnist"])
def test_shipped_pixel_configs_train_with_their_groups(name: str, tmp_path: Path) -> None:
    write_tiny_mnist(tmp_path / "data", n_train=60, n_test=20)
    exp = load_experiment(CONFIGS / f"{name}.yaml", [
        "train.epochs=1", "train.steps_per_epoch=1", "train.batch_size=8", "train.threads=1",
        "task.val_size=20", f"data.root={tmp_path / 'data'}", "data.download=false"])
    assert exp.task.sequence == "pixels" and exp.model.name == "s4d"
    task, net = build(exp, CPU)
    trainer = Trainer(exp, task, net, tmp_path, Reporter(quiet=True), CPU, 1)
    lrs = {g["name"]: (g["initial_lr"], g["weight_decay"]) for g in trainer.optimizer.param_groups}
    assert lrs == {"default": (0.004, 0.01), "ssm": (pytest.approx(0.001), 0.0), "no_decay": (0.004, 0.0)}
    assert math.isfinite(trainer.train_epoch()["train_loss"])


def test_precision_auto_is_bf16_on_a_native_bf16_cpu_only(monkeypatch) -> None:
    from rnnlab.training import precision

    exp = build_experiment({"task": {"name": "sine", "mode": "window", "n_points": 200},
                            "model": {"name": "s4d", "hidden_size": 8}})
    net = build(exp, CPU)[1]
    monkeypatch.setattr(precision, "onednn_isa_cap", lambda: None)
    monkeypatch.setattr(precision, "cpu_features", lambda: ("avx2",))
    assert precision.resolve_precision("auto", CPU, net) == "fp32"
    monkeypatch.setattr(precision, "cpu_features", lambda: ("avx2", "avx512f", "avx512_bf16"))
    assert precision.resolve_precision("auto", CPU, net) == "bf16"
    assert precision.resolve_precision("auto", torch.device("cuda"), net) == "fp32"


def test_initial_steps_lie_in_the_configured_range() -> None:
    raw = {"task": {"name": "adding", "length": 20, "n_train": 8, "n_val": 4, "n_test": 4},
           "model": {"name": "s4d", "hidden_size": 64, "num_layers": 2, "dt_min": 1e-4, "dt_max": 1e-2}}
    model = build(build_experiment(raw), CPU)[1]
    dts = torch.cat([m.log_dt.exp() for m in model.modules() if hasattr(m, "log_dt")])
    assert dts.numel() == 128 and dts.min() >= 1e-4 * (1 - 1e-6) and dts.max() <= 1e-2 * (1 + 1e-6)
    assert dts.max() > 1e-3 > dts.min()  # spread over the range, not one value


@pytest.mark.parametrize("prenorm", [False, True])
def test_last_only_equals_the_full_stack_at_each_last_step_with_gradients(prenorm: bool) -> None:
    """Last-step tasks (``pooling: last``) compute the final block at the last real steps only: the
    same outputs and parameter gradients as the full window read at each sequence's length."""
    core = stack(prenorm=prenorm)
    x = torch.randn(4, 29, 3, dtype=torch.float64)
    lengths = torch.tensor([29, 17, 5, 1])
    picked = []
    for last_only in (False, True):
        core.zero_grad()
        core.last_only, core.keep_state = last_only, False
        out, state = run(core, "fft", x, lengths, None)
        assert state is None
        if last_only:
            assert out.shape == (4, 1, 6)
            out = out[:, 0]
        else:
            out = out[torch.arange(4), lengths - 1]
        out.pow(2).sum().backward()
        picked.append((out.detach(), [p.grad.clone() for p in core.parameters()]))
    (full, full_grads), (last, last_grads) = picked
    assert torch.allclose(full, last, atol=1e-10, rtol=0)
    for a, b in zip(full_grads, last_grads):
        assert torch.allclose(a, b, atol=1e-9, rtol=0)


def test_last_step_models_read_the_same_prediction_either_way() -> None:
    raw = {"task": {"name": "adding", "length": 25, "n_train": 8, "n_val": 4, "n_test": 4},
           "model": {"name": "s4d", "hidden_size": 8, "num_layers": 2, "d_state": 4, "pooling": "last"}}
    model = build(build_experiment(raw), CPU)[1].double().eval()
    assert model.rnn.last_only
    x = torch.rand(3, 25, 2, dtype=torch.float64)
    with torch.no_grad():
        fast = model(x)[0]
        model.rnn.last_only = False
        assert torch.allclose(fast, model(x)[0], atol=1e-10, rtol=0)
