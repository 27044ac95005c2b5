"""``rnnlab export RUN --format onnx|torchscript``: a trained model as a file that runs without
rnnlab (onnxruntime, or ``torch.jit.load``), checked against PyTorch before it is kept.

What is exported (extra ``rnnlab[export]`` for ONNX: onnx, onnxruntime):
- recurrent models (rnn, lstm, gru): ``(x, h0[, c0]) -> (out, hn[, cn])`` with the recurrent state
  as explicit inputs and outputs, so a caller can stream step by step (feed ``hn`` back as ``h0``);
  the state is ``(num_layers * directions, batch, hidden_size)``, zeros for a fresh sequence.
  ``ElmanRNN`` (rnnlab's CPU ``nn.RNN``) is exported as the ``nn.RNN`` it is equal to;
- a model whose core has ``export_state()`` (s4d): ``(x, h0) -> (out, hn)`` with that state, batch
  at dim 1 (s4d: ``(num_layers, batch, hidden_size, d_state / 2, 2)``, the real and imaginary parts);
- any other model: ``x -> out``.
Batch and time are dynamic axes, except for models that read windows of a fixed length (``linear``,
``segrnn``, ``mlp``: ``Model.fixed_window``), whose time axis is the run's lookback. A family traces
``Model.export_module()`` (minGRU/minLSTM: their sequential form as a TorchScript loop, since the
fused CPU kernel is invisible to the exporters); a family may list formats it cannot be exported to
(``Model.export_refusals``): those are refused with its reason before any work.
``x`` is float32 ``(batch, time, features)`` or, for token tasks
(charlm, sentiment), int64 token ids ``(batch, time)``: the run's ``vocab.json`` maps characters.
Sequences are taken whole (no padding mask): give a batch of equal-length sequences.

Verification: the exported file is run on a batch of the run's own data (the test split for mnist
and charlm, else the first training batch) at two batch sizes and sequence lengths, with random
initial states, and, for per-step models, streamed one step at a time; the largest absolute
difference from PyTorch is reported, and above ``tolerance`` (finite, > 0) the export is an error,
as is any output that is not finite. The file and its ``.json`` sidecar follow ``outputs.py``: never
inside a run (but the default ``RUN/export/``), never over the checkpoint, ``--force`` to replace.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from rnnlab.common.outputs import check_outputs, temp_path, with_companion, writing
from rnnlab.common.safeio import disk_full_error, is_disk_full
from rnnlab.errors import ConfigError, RnnlabError
from rnnlab.models.elman import ElmanRNN
from rnnlab.rundir import files as runs

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
TOLERANCE = 1e-4
EXPORT_DIR = "export"


class ExportError(RnnlabError):
    """The exported model does not reproduce PyTorch's outputs (or could not be written)."""


@dataclass
class Exported:
    path: Path
    format: str
    inputs: list[str]
    outputs: list[str]
    checks: dict[str, float] = field(default_factory=dict)  # check name -> max abs difference

    @property
    def max_abs_diff(self) -> float:
        return max(self.checks.values(), default=0.0)


def require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError("--format onnx",
                          "needs onnx and onnxruntime: pip install 'rnnlab[export]'") from None


# ----------------------------------------------------------------------------- the wrappers


def plain_rnn(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every ``ElmanRNN`` replaced by an equal ``nn.RNN``."""
    module = copy.deepcopy(module)
    for name, child in list(module.named_modules()):
        if isinstance(child, ElmanRNN):
            rnn = nn.RNN(child.input_size, child.hidden_size, child.num_layers,
                         nonlinearity=child.nonlinearity, bias=child.bias, batch_first=child.batch_first,
                         dropout=child.dropout, bidirectional=child.bidirectional)
            rnn.load_state_dict(child.state_dict())
            parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            if name:
                setattr(parent, name.rpartition(".")[2], rnn)
            else:
                return rnn
    return module


class WithState(nn.Module):
    """``(x, h0) -> (out, hn)`` around a model whose ``forward(x, lengths, state)`` takes its
    recurrent layer's state."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, hn = self.model(x, None, h0)
        return out, hn


class WithLSTMState(nn.Module):
    """``(x, h0, c0) -> (out, hn, cn)``, the same for an LSTM."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, (hn, cn) = self.model(x, None, (h0, c0))
        return out, hn, cn


class Stateless(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.model(x)
        return out


@dataclass
class Signature:
    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    state_shape: Optional[tuple[int, ...]]  # (layers * directions, hidden, ...) when state is explicit
    state_dims: tuple[str, ...] = ("num_layers * directions", "batch", "hidden_size")

    def states(self, batch: int, generator: Optional[torch.Generator]) -> list[torch.Tensor]:
        """Initial states for ``batch`` sequences: random (to check they are used) or zeros."""
        if self.state_shape is None:
            return []
        n, *rest = self.state_shape
        make = (lambda: torch.randn(n, batch, *rest, generator=generator)) if generator is not None \
            else (lambda: torch.zeros(n, batch, *rest))
        return [make() for _ in self.inputs[1:]]


def signature(model: nn.Module) -> Signature:
    from rnnlab.models.recurrent import Recurrent

    stateful = isinstance(model, Recurrent)  # forward(x, lengths, state) feeds the state to its rnn
    export = getattr(model, "export_module", None)
    model = plain_rnn(export() if callable(export) else model).eval()
    rnn = getattr(model, "rnn", None)
    if stateful and isinstance(rnn, nn.RNNBase) and not rnn.proj_size:
        shape = (rnn.num_layers * (2 if rnn.bidirectional else 1), rnn.hidden_size)
        if isinstance(rnn, nn.LSTM):
            return Signature(WithLSTMState(model).eval(), ["x", "h0", "c0"], ["out", "hn", "cn"], shape)
        return Signature(WithState(model).eval(), ["x", "h0"], ["out", "hn"], shape)
    export_state = getattr(rnn, "export_state", None)  # a core with one state tensor (batch at dim 1)
    if export_state is not None:
        shape, dims = export_state()
        return Signature(WithState(model).eval(), ["x", "h0"], ["out", "hn"], shape, dims)
    return Signature(Stateless(model).eval(), ["x"], ["out"], None)


# ----------------------------------------------------------------------------- writing


def dynamic_axes(sig: Signature, fixed_time: bool = False) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {"x": {0: "batch"} if fixed_time else {0: "batch", 1: "time"},
                                       "out": {0: "batch"}}
    for name in (*sig.inputs[1:], *sig.outputs[1:]):
        axes[name] = {1: "batch"}
    return axes


def write_onnx(sig: Signature, example: tuple[torch.Tensor, ...], path: Path,
               fixed_time: bool = False) -> None:
    axes = dynamic_axes(sig, fixed_time)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notes
        out = sig.module(*example)
        first = out[0] if isinstance(out, tuple) else out
        if first.dim() == 3 and not fixed_time:  # per-step outputs: (batch, time, classes)
            axes["out"][1] = "time"
        try:  # the TorchScript-based exporter maps nn.LSTM/GRU/RNN to ONNX's own recurrent ops
            torch.onnx.export(sig.module, example, str(path), input_names=sig.inputs,
                              output_names=sig.outputs, dynamic_axes=axes, opset_version=17, dynamo=False)
        except TypeError:  # a torch without it: the torch.export-based one
            dims = {"batch": torch.export.Dim("batch"), "time": torch.export.Dim("time")}
            shapes = tuple({k: dims[v] for k, v in axes[name].items()} for name in sig.inputs)
            torch.onnx.export(sig.module, example, str(path), input_names=sig.inputs,
                              output_names=sig.outputs, dynamic_shapes=shapes, dynamo=True)


def write_torchscript(sig: Signature, example: tuple[torch.Tensor, ...], path: Path,
                      fixed_time: bool = False) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(sig.module, example, check_trace=False)
        torch.jit.save(traced, str(path))


def runner(fmt: str, path: Path, sig: Signature) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    """Run the exported file: inputs and outputs as torch tensors, in signature order."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # no shape-inference notes on stderr
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run_onnx(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
            feed = {name: t.numpy() for name, t in zip(sig.inputs, inputs)}
            return [torch.from_numpy(a) for a in session.run(sig.outputs, feed)]

        return run_onnx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation note
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run_script(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        with torch.no_grad():
            out = loaded(*inputs)
        return list(out) if isinstance(out, tuple) else [out]

    return run_script


# ----------------------------------------------------------------------------- verification


def reference(sig: Signature, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        out = sig.module(*inputs)
    return list(out) if isinstance(out, tuple) else [out]


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest absolute difference; ``inf`` when either side is not finite (a failure)."""
    if not all(bool(torch.isfinite(t).all()) for t in (*a, *b)):
        return math.inf
    return max(float((x.double() - y.double()).abs().max()) for x, y in zip(a, b))


def stream(run: Callable[[list[torch.Tensor]], list[torch.Tensor]], sig: Signature, x: torch.Tensor,
           states: list[torch.Tensor]) -> torch.Tensor:
    """Feed ``x`` one step at a time, each step's state back in; the per-step outputs joined."""
    outs = []
    for t in range(x.shape[1]):
        step = run([x[:, t:t + 1], *states])
        outs.append(step[0])
        states = step[1:]
    return torch.cat(outs, dim=1)


def verify(run: Callable[[list[torch.Tensor]], list[torch.Tensor]], sig: Signature, x: torch.Tensor,
           per_step: bool, fixed_time: bool = False) -> dict[str, float]:
    """Max abs differences from PyTorch: at the batch's size and at about half its batch and
    length (the dynamic axes; the whole length for a fixed time axis), and streamed step by step
    against the whole sequence."""
    gen = torch.Generator().manual_seed(0)
    checks = {}
    half = x[: max(1, x.shape[0] // 2), : x.shape[1] if fixed_time else max(1, x.shape[1] // 2)]
    for name, xs in ((f"batch {x.shape[0]} x {x.shape[1]} steps", x),
                     (f"batch {half.shape[0]} x {half.shape[1]} steps", half)):
        inputs = [xs, *sig.states(xs.shape[0], gen)]
        checks[name] = max_diff(run(inputs), reference(sig, inputs))
    if per_step and sig.state_shape is not None and not fixed_time:
        steps = x[:, : min(x.shape[1], 32)]
        states = sig.states(steps.shape[0], None)
        whole = reference(sig, [steps, *states])[0]
        checks[f"streamed {steps.shape[1]} steps vs whole sequence"] = max_diff(
            [stream(run, sig, steps, states)], [whole])
    return checks


# ----------------------------------------------------------------------------- the command


def check_tolerance(tolerance: float) -> float:
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise ConfigError("--tolerance", f"must be a finite number > 0, got {tolerance}")
    return float(tolerance)


def check_exportable(model: nn.Module, name: str, fmt: str) -> None:
    """A family's declared refusal (``Model.export_refusals``), before any work."""
    reason = getattr(model, "export_refusals", {}).get(fmt)
    if reason:
        raise ExportError("--format", f"model {name!r} cannot be exported to {fmt}: {reason}")


def reference_outputs_finite(sig: Signature, x: torch.Tensor, name: str, run_dir: Path) -> None:
    """The model's own outputs on the run's data must be finite, or nothing can be verified."""
    bad = [n for n, t in zip(sig.outputs, reference(sig, [x, *sig.states(x.shape[0], None)]))
           if not bool(torch.isfinite(t).all())]
    if bad:
        raise ExportError(str(run_dir), f"model {name!r} gives outputs that are not finite ({bad[0]}) on "
                          "the run's own data; nothing to verify an export against")


def export_run(run: str | Path, fmt: str, checkpoint: str = "best", out: Optional[Path] = None,
               tolerance: float = TOLERANCE, batch: int = 8, force: bool = False,
               allow_foreign: bool = False) -> Exported:
    """Export a run's model, verify it, and keep the file only if it matches PyTorch."""
    from rnnlab.training.evaluation import load_run

    if fmt not in FORMATS:
        raise ConfigError("--format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    tolerance = check_tolerance(tolerance)
    if fmt == "onnx":
        require_onnx()
    run_dir = runs.resolve_run(run)
    own = run_dir / EXPORT_DIR
    path = Path(out) if out is not None else own / f"model_{checkpoint}{FORMATS[fmt]}"
    ckpt = run_dir / runs.CHECKPOINTS / f"{checkpoint}.pt"
    path, sidecar = check_outputs(with_companion(path, add=".json"), "--out", [ckpt], force, own)
    run_dir, exp, task, model, _ = load_run(run, checkpoint, "cpu", allow_foreign, for_inference=True)
    check_exportable(model, exp.model.name, fmt)
    model.eval()
    fixed = bool(getattr(model, "fixed_window", False))
    sig = signature(model)
    x = task.saved_inputs(batch)
    if x is None:  # a run from before the inputs were saved, or a larger --batch: from the data
        x = load_run(run, checkpoint, "cpu", allow_foreign)[2].sample_inputs(batch)
    reference_outputs_finite(sig, x, exp.model.name, run_dir)
    example = (x, *sig.states(x.shape[0], None))
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    with temp_path(path) as tmp:
        try:
            (write_onnx if fmt == "onnx" else write_torchscript)(sig, example, tmp, fixed)
            checks = verify(runner(fmt, tmp, sig), sig, x, task.spec.output == "sequence", fixed)
        except (RnnlabError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - an operator the exporter cannot express, ...
            if is_disk_full(exc, tmp):
                raise disk_full_error(path, exc) from None
            text = str(exc).strip().splitlines()
            raise ExportError(str(run_dir), f"cannot export model {exp.model.name!r} to {fmt}: "
                              f"{type(exc).__name__}: {text[0][:200] if text else ''}") from None
        result = Exported(path, fmt, sig.inputs, sig.outputs, checks)
        if not result.max_abs_diff <= tolerance:
            worst = max(checks, key=lambda k: checks[k])
            raise ExportError(str(path), f"exported model differs from PyTorch by {result.max_abs_diff:.3g} "
                              f"(> tolerance {tolerance:g}) on {worst}; nothing kept")
        tmp.replace(path)
    runs.write_json(sidecar, {
        "run": str(run_dir.resolve()), "checkpoint": checkpoint, "format": fmt, "task": exp.task.name,
        "model": exp.model.name, "inputs": sig.inputs, "outputs": sig.outputs,
        "input": "token ids (int64, batch x time)" if task.spec.input_kind == "tokens"
        else "float32 (batch x time x features)", "time": "fixed" if fixed else "dynamic",
        "state": None if sig.state_shape is None else
        {"shape": list(sig.state_dims), "size": list(sig.state_shape)},
        "max_abs_diff": checks, "tolerance": tolerance})
    return result
