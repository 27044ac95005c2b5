"""``rnnlab export``: ONNX (run in onnxruntime) and TorchScript files of tiny runs trained here,
matching PyTorch with other batch sizes and lengths, and streaming step by step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import build_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.integrations.export import ExportError, export_run, plain_rnn, signature
from rnnlab.models.elman import ElmanRNN
from rnnlab.training.evaluation import load_run

from .mnist_data import write_tiny_mnist
from .test_charlm import WORDS, charlm_raw, text_file

runner = CliRunner()


def train(raw: dict[str, Any], runs_dir: Path) -> Path:
    return train_run(build_experiment(raw), runs_dir, Reporter(quiet=True))


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export_mnist")
    write_tiny_mnist(tmp / "mnist", n_train=120, n_test=40)
    return train({"name": "lstm_mnist", "task": {"name": "mnist", "val_size": 20},
                  "model": {"name": "lstm", "hidden_size": 12, "num_layers": 2},
                  "train": {"epochs": 1, "batch_size": 32, "seed": 0, "threads": 1},
                  "data": {"root": str(tmp / "mnist"), "download": False},
                  "logging": {"plots": False}}, tmp / "runs")


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export_charlm")
    raw = charlm_raw(text_file(tmp, WORDS * 20), {"train": {"epochs": 1, "steps_per_epoch": 3}})
    return train(raw, tmp / "runs")


def onnx_session(path: Path) -> Any:
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_export_of_an_lstm_mnist_run_matches_pytorch_at_any_batch_and_length(mnist_run: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    result = runner.invoke(app, ["export", str(mnist_run), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])
    assert path == mnist_run / "export" / "model_best.onnx" and path.is_file()
    assert "max abs diff" in result.output
    # independently of the built-in check: other shapes than the ones it tried, nonzero states
    _, _, _, model, _ = load_run(mnist_run)
    sig = signature(model)
    session = onnx_session(path)
    gen = torch.Generator().manual_seed(1)
    for batch, steps in ((1, 28), (5, 28), (3, 11)):
        x = torch.randn(batch, steps, 28, generator=gen)
        h0, c0 = (torch.randn(2, batch, 12, generator=gen) for _ in range(2))
        got = session.run(None, {"x": x.numpy(), "h0": h0.numpy(), "c0": c0.numpy()})
        with torch.no_grad():
            want = sig.module(x, h0, c0)
            out, _ = model(x, None, (h0, c0))  # the run's own model, not the wrapper
        assert got[0].shape == (batch, 10)
        assert torch.allclose(out, want[0])
        for a, b in zip(got, want):
            assert float((torch.from_numpy(a) - b).abs().max()) <= 1e-4


def test_streamed_char_lm_matches_the_whole_sequence(charlm_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    path = export_run(charlm_run, "onnx", out=tmp_path / "lm.onnx").path
    session = onnx_session(path)
    size = json.loads((charlm_run / "vocab.json").read_text())["size"]
    gen = torch.Generator().manual_seed(0)
    for batch, steps in ((1, 5), (3, 40)):
        x = torch.randint(size, (batch, steps), generator=gen)
        zeros = torch.zeros(1, batch, 16).numpy()
        whole = session.run(None, {"x": x.numpy(), "h0": zeros, "c0": zeros})
        h, c = zeros, zeros
        steps_out = []
        for t in range(steps):
            out, h, c = session.run(None, {"x": x[:, t:t + 1].numpy(), "h0": h, "c0": c})
            steps_out.append(torch.from_numpy(out))
        streamed = torch.cat(steps_out, dim=1)
        assert whole[0].shape == (batch, steps, size)
        assert float((streamed - torch.from_numpy(whole[0])).abs().max()) <= 1e-4
        assert float((torch.from_numpy(h) - torch.from_numpy(whole[1])).abs().max()) <= 1e-4
        _, _, _, model, _ = load_run(charlm_run)
        with torch.no_grad():
            ref, _ = model(x)
        assert float((ref - torch.from_numpy(whole[0])).abs().max()) <= 1e-4


def test_torchscript_export_of_a_charlm_run(charlm_run: Path, tmp_path: Path) -> None:
    result = export_run(charlm_run, "torchscript", checkpoint="last", out=tmp_path / "lm.pt")
    assert result.max_abs_diff <= 1e-4
    assert any(k.startswith("streamed") for k in result.checks)
    loaded = torch.jit.load(str(result.path))
    x = torch.randint(5, (2, 9))
    _, _, _, model, _ = load_run(charlm_run, "last")
    with torch.no_grad():
        out, hn, cn = loaded(x, torch.zeros(1, 2, 16), torch.zeros(1, 2, 16))
        ref, (h, c) = model(x)
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(hn, h, atol=1e-5)


def test_elman_rnn_is_exported_as_nn_rnn() -> None:
    elman = ElmanRNN(3, 5, num_layers=2, batch_first=True)
    plain = plain_rnn(torch.nn.Sequential(elman))[0]
    assert type(plain) is torch.nn.RNN
    x = torch.randn(2, 7, 3)
    with torch.no_grad():
        assert torch.allclose(plain(x)[0], elman(x)[0], atol=1e-6)


def test_a_difference_over_the_tolerance_is_an_error_and_keeps_nothing(
        charlm_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rnnlab.integrations.export as export

    out = tmp_path / "lm.pt"
    monkeypatch.setattr(export, "verify", lambda *a, **k: {"batch 8 x 16 steps": 0.227})
    with pytest.raises(ExportError, match="differs from PyTorch by 0.227"):
        export_run(charlm_run, "torchscript", out=out)
    monkeypatch.setattr(export, "verify", lambda *a, **k: {"batch 8 x 16 steps": float("nan")})
    with pytest.raises(ExportError, match="differs from PyTorch by nan"):
        export_run(charlm_run, "torchscript", out=out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_format_is_one_line(charlm_run: Path) -> None:
    result = runner.invoke(app, ["export", str(charlm_run), "--format", "tflite"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --format: must be one of onnx, torchscript, got 'tflite'"]


def test_missing_onnx_is_one_line(charlm_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_onnx(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    result = runner.invoke(app, ["export", str(charlm_run), "--format", "onnx"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --format onnx: needs onnx and onnxruntime: "
                                     "pip install 'rnnlab[export]'")


# ----------------------------------------------------------------------------- every family (issue 24)


def family_run(family: str, folder: Path) -> Path:
    """A tiny run of ``family`` on the first built-in check case it accepts (sine and series first)."""
    from rnnlab.errors import ConfigError
    from rnnlab.testing.cases import all_cases, sections

    order = {"sine": 0, "series": 1}
    cases = sorted(all_cases(folder), key=lambda c: order.get(c.task, 2))
    for case in cases:
        for section in sections(family):
            raw = case.raw(section)
            raw["train"].update({"epochs": 1, "steps_per_epoch": 2})
            try:  # the model checks the task's spec when it is built
                return train_run(build_experiment(raw), folder / "runs", Reporter(quiet=True))
            except ConfigError:
                continue
    raise AssertionError(f"no built-in case accepts model {family!r}")


def registered_families() -> list[str]:
    from rnnlab.models import MODELS

    return MODELS.names()


@pytest.mark.parametrize("family", registered_families())
def test_every_registered_family_exports_verified_or_refuses_first(family: str, tmp_path: Path) -> None:
    from rnnlab.models import MODELS

    run = family_run(family, tmp_path)
    refusals = getattr(MODELS.get(family), "export_refusals", {})
    for fmt in ("torchscript", "onnx"):
        if fmt == "onnx":
            pytest.importorskip("onnx")
            pytest.importorskip("onnxruntime")
        out = tmp_path / f"model.{fmt}"
        if fmt in refusals:
            with pytest.raises(ExportError, match="cannot be exported"):
                export_run(run, fmt, out=out)
            assert not out.exists()
            continue
        result = export_run(run, fmt, out=out)
        assert out.is_file() and result.max_abs_diff <= 1e-4 and result.checks
        sidecar = json.loads(out.with_name(out.name + ".json").read_text())
        fixed = bool(getattr(MODELS.get(family), "fixed_window", False))
        assert sidecar["time"] == ("fixed" if fixed else "dynamic") and sidecar["model"] == family
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_declared_refusal_comes_before_any_work(charlm_run: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import rnnlab.integrations.export as export
    from rnnlab.models import MODELS

    monkeypatch.setattr(MODELS.get("lstm"), "export_refusals", {"torchscript": "no reason but a test"})
    monkeypatch.setattr(export, "write_torchscript", lambda *a, **k: pytest.fail("work was done"))
    result = runner.invoke(app, ["export", str(charlm_run), "--format", "torchscript",
                                 "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --format: model 'lstm' cannot be exported to "
                                     "torchscript: no reason but a test")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
def test_tolerance_must_be_finite_and_positive_before_any_work(value: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path / "no_such_run"), "--format", "torchscript",
                                 "--tolerance", value])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: --tolerance: must be a finite number > 0")
    assert not list(tmp_path.iterdir())
