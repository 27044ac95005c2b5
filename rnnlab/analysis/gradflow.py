"""Gradient flow through time: the norm of dL/dh_t at every time step t and layer, on one batch.

``nn.RNN``/``nn.LSTM``/``nn.GRU`` compute every h_t inside one kernel, so no h_t exists as a tensor
whose gradient could be read. ``unrolled(model)`` swaps each recurrent module for an ``Unrolled``
twin that computes the same function with the same parameters one step at a time (PyTorch's own
cell functions) and keeps every h_t; minGRU/minLSTM layers (``MinLayer``) are told to run their
sequential form and hand their h_t over themselves. Then the task's own ``loss(model, batch)`` runs and is
backpropagated, so this works for any task and any recurrent model (``forward``, ``forecast``,
encoder-decoders). For a module called several times (rollouts, decoders) the time axis is the
steps of every call in order. The measurement runs in eval mode (no dropout) in float64, so the
gradients of long sequences show their true size instead of underflowing float32 to zero.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab.common.numbers import MAX_GRADFLOW_STEPS, check_number
from rnnlab.config.loading import Experiment
from rnnlab.errors import ConfigError
from rnnlab.models.base import Model
from rnnlab.tasks.base import Batch, Task

CELLS = {"LSTM": torch.lstm_cell, "GRU": torch.gru_cell,
         "RNN_TANH": torch.rnn_tanh_cell, "RNN_RELU": torch.rnn_relu_cell}


@dataclass
class Curve:
    """The mean over a batch of ||dL/dh_t||, one value per time step, for one layer (and
    direction) of one model in one state."""

    label: str  # which config or run
    stage: str  # "init", "step K" or "trained"
    layer: str  # "layer 0", "layer 1 reverse", ...
    norms: list[float]


@dataclass
class Segment:
    """The states of one call of one layer (and direction): ``hs[s]`` (B, H) at step s; ``real``
    (B, T) marks real (not padding) positions; ``order`` (B, T) maps input position -> step for
    the reverse direction."""

    hs: list[torch.Tensor]
    real: Optional[torch.Tensor]
    order: Optional[torch.Tensor]

    def norms(self) -> list[float]:
        grads = [h.grad if h.grad is not None else torch.zeros_like(h) for h in self.hs]
        per_sample = torch.stack(grads, dim=1).norm(dim=-1)  # (B, T) by step
        if self.order is not None:  # by input position
            per_sample = per_sample.gather(1, self.order)
        if self.real is None:
            return per_sample.mean(0).tolist()
        real = self.real.to(per_sample.dtype)
        return ((per_sample * real).sum(0) / real.sum(0)).tolist()  # NaN where all are padding


class Recorder:
    """Every h_t of every layer, in the order the model computed them."""

    def __init__(self) -> None:
        self.segments: dict[str, list[Segment]] = {}

    def keep(self, layer: str, segment: Segment) -> None:
        for h in segment.hs:
            h.retain_grad()
        self.segments.setdefault(layer, []).append(segment)

    def keep_states(self, layer: str, hs: list[torch.Tensor], real: Optional[torch.Tensor],
                    order: Optional[torch.Tensor]) -> None:
        """For layers that record themselves (minGRU/minLSTM): the same as ``keep``."""
        self.keep(layer, Segment(hs, real, order))

    def norms(self) -> dict[str, list[float]]:
        """Per layer, per step: the mean over the batch's real samples of ||dL/dh_t||."""
        return {layer: [value for segment in segments for value in segment.norms()]
                for layer, segments in self.segments.items()}


class Unrolled(nn.Module):
    """``rnn`` (batch_first nn.RNN/LSTM/GRU) computed step by step with its own parameters; same
    inputs (tensor or PackedSequence, optional initial state) and outputs as the module."""

    def __init__(self, rnn: nn.RNNBase, recorder: Recorder) -> None:
        super().__init__()
        if not rnn.batch_first or getattr(rnn, "proj_size", 0):
            raise ValueError("gradflow supports batch_first recurrent layers without projections")
        self.rnn = rnn
        self.recorder = recorder
        self.cell = CELLS[rnn.mode]
        self.lstm = rnn.mode == "LSTM"
        self.directions = 2 if rnn.bidirectional else 1

    def forward(self, input: Any, *rest: Any) -> tuple[Any, Any]:
        """Called as the module it replaces, ``(input, hx=None)``, or inside ``Recurrent.run`` with
        the core contract ``(x, lengths, state)`` (a padded batch and its lengths)."""
        lengths, hx = rest if len(rest) == 2 else (None, *(rest or (None,)))
        packed = isinstance(input, PackedSequence)
        x, lengths = pad_packed_sequence(input, batch_first=True) if packed else (input, lengths)
        if lengths is not None:
            lengths = lengths.cpu()
        batch, steps = x.shape[:2]
        real = None
        if lengths is not None:  # real[b, t]: step t is inside sequence b
            real = torch.arange(steps)[None, :] < lengths[:, None]
            real = real.to(x.device)
        h0, c0 = self.initial(hx, batch, x)
        rnn, layer_in, finals_h, finals_c = self.rnn, x, [], []
        for layer in range(rnn.num_layers):
            outputs = []
            for direction in range(self.directions):
                k = layer * self.directions + direction
                state = (h0[k], c0[k]) if self.lstm else h0[k]
                seq, state = self.direction(layer_in, state, layer, direction, real, lengths)
                outputs.append(seq)
                finals_h.append(state[0] if self.lstm else state)
                if self.lstm:
                    finals_c.append(state[1])
            layer_in = torch.cat(outputs, dim=-1)
            if rnn.dropout and self.training and layer < rnn.num_layers - 1:
                layer_in = nn.functional.dropout(layer_in, rnn.dropout, True)
        h_n = torch.stack(finals_h)
        final = (h_n, torch.stack(finals_c)) if self.lstm else h_n
        if packed:
            layer_in = pack_padded_sequence(layer_in, lengths, batch_first=True, enforce_sorted=False)
        return layer_in, final

    def initial(self, hx: Any, batch: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hx is None:
            zeros = x.new_zeros(self.rnn.num_layers * self.directions, batch, self.rnn.hidden_size)
            return zeros, zeros
        return hx if self.lstm else (hx, hx)

    def direction(self, x: torch.Tensor, state: Any, layer: int, direction: int,
                  real: Optional[torch.Tensor], lengths: Optional[torch.Tensor]
                  ) -> tuple[torch.Tensor, Any]:
        """One direction of one layer over the whole sequence. The reverse direction reads each
        sequence's real steps backwards (padding stays at the end), as cuDNN does."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        rnn = self.rnn
        weights = [getattr(rnn, f"weight_ih{suffix}"), getattr(rnn, f"weight_hh{suffix}")]
        biases = ([getattr(rnn, f"bias_ih{suffix}"), getattr(rnn, f"bias_hh{suffix}")] if rnn.bias
                  else [None, None])
        order = reverse_order(x.shape[0], x.shape[1], lengths, x.device) if direction else None
        if order is not None:
            x = x.gather(1, order[..., None].expand_as(x))
        hs = []
        for t in range(x.shape[1]):
            new = self.cell(x[:, t], state, *weights, *biases)
            if real is not None:  # after a sequence's end its state stays as it was
                mask = real[:, t, None]
                new = (tuple(torch.where(mask, n, s) for n, s in zip(new, state)) if self.lstm
                       else torch.where(mask, new, state))
            state = new
            hs.append(state[0] if self.lstm else state)
        out = torch.stack(hs, dim=1)
        if order is not None:
            out = out.gather(1, order[..., None].expand_as(out))
        self.recorder.keep(f"layer {layer}" + (" reverse" if direction else ""), Segment(hs, real, order))
        return out, state


def reverse_order(batch: int, steps: int, lengths: Optional[torch.Tensor], device: torch.device
                  ) -> torch.Tensor:
    """(B, T) indices that reverse each sequence's real steps and leave its padding in place."""
    t = torch.arange(steps, device=device).expand(batch, steps)
    if lengths is None:
        return steps - 1 - t
    n = lengths.to(device)[:, None]
    return torch.where(t < n, n - 1 - t, t)


@contextlib.contextmanager
def unrolled(model: nn.Module, recorder: Recorder) -> Iterator[None]:
    """Within the block every recurrent module of ``model`` is its ``Unrolled`` twin."""
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.RNNBase):
                setattr(parent, name, Unrolled(child, recorder))
                swapped.append((parent, name, child))
    # minGRU/minLSTM layers and plugin cores that keep a ``recorder`` (Recurrent.build_core)
    recording = [m for m in model.modules() if hasattr(m, "recorder") and not isinstance(m, Recorder)]
    for layer in recording:  # these run their sequential form and hand every h_t to the recorder
        layer.recorder = recorder
    if not swapped and not recording:
        raise ConfigError("model.name", "gradflow needs a recurrent model (rnn, lstm, gru, mingru, "
                          f"minlstm, seq2seq); "
                          f"'{getattr(getattr(model, 'options', None), 'name', type(model).__name__)}' "
                          "has no hidden state")
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        for layer in recording:
            layer.recorder = None


def as_double(batch: Batch) -> Batch:
    def cast(value: Any) -> Any:
        return value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    return Batch(cast(batch.x), cast(batch.y), batch.lengths,
                 {key: cast(value) for key, value in batch.extra.items()})


def measure(task: Task, model: Model, batch: Batch) -> dict[str, list[float]]:
    """||dL/dh_t|| per layer and step for ``task.loss(model, batch)``; ``model`` is not changed."""
    twin = copy.deepcopy(model).double().eval()
    recorder = Recorder()
    with torch.enable_grad(), unrolled(twin, recorder):
        loss, _ = task.loss(twin, as_double(batch), None)
        loss.backward()
    return recorder.norms()


def first_batch(exp: Experiment, task: Task, batch_size: Optional[int] = None) -> Batch:
    """The run's first training batch: the data order is drawn from ``train.seed``, so models
    compared on one task config see the same samples."""
    generator = torch.Generator().manual_seed(exp.train.seed)
    return next(iter(task.train_batches(batch_size or exp.train.batch_size, generator)))


def curves(label: str, stage: str, norms: dict[str, list[float]]) -> list[Curve]:
    return [Curve(label, stage, layer, values) for layer, values in sorted(norms.items())]


# ----------------------------------------------------------------------------- configs and runs


def measure_config(path: Path, overrides: list[str], steps: int, device: torch.device,
                   batch_size: Optional[int]) -> list[Curve]:
    """A config's model at initialisation and, with ``steps`` > 0, after that many training
    steps (the trainer's own step: optimizer, clipping, precision)."""
    from rnnlab.common.console import Reporter
    from rnnlab.config.loading import load_experiment
    from rnnlab.training.build import build
    from rnnlab.training.runtime import set_threads
    from rnnlab.training.trainer import Trainer

    exp = load_experiment(path, overrides)
    threads = set_threads(exp.train.threads)
    task, model = build(exp, device)
    batch = first_batch(exp, task, batch_size)
    out = curves(exp.name, "init", measure(task, model, batch))
    if steps:
        short = exp.config.model_copy(update={"train": exp.train.model_copy(
            update={"epochs": 1, "steps_per_epoch": steps})})
        # train_epoch writes nothing, so the trainer needs no run directory
        trainer = Trainer(Experiment(short, exp.task, exp.data, exp.model), task, model, Path("."),
                          Reporter(quiet=True), device, threads)
        trainer.train_epoch()
        out += curves(exp.name, f"step {steps}", measure(task, model, batch))
    return out


def measure_run(path: Path, device: torch.device, batch_size: Optional[int]) -> list[Curve]:
    """A run's model at its initialisation (rebuilt from its seed) and at its best checkpoint."""
    from rnnlab.training.build import init_model
    from rnnlab.training.evaluation import load_run

    run_dir, exp, task, trained, _ = load_run(path, "best", str(device))
    batch = first_batch(exp, task, batch_size)
    label = run_dir.name
    return (curves(label, "init", measure(task, init_model(exp, task, device), batch))
            + curves(label, "trained", measure(task, trained, batch)))


def gradflow(sources: list[Path], overrides: list[str], steps: int, device: str = "cpu",
             batch_size: Optional[int] = None) -> list[Curve]:
    """Curves for every source: a run directory or a config file (``overrides`` apply to configs)."""
    from rnnlab.training.runtime import resolve_device

    check_number(steps, "--steps", integer=True, low=0, high=MAX_GRADFLOW_STEPS,
                 why="training steps before the second measurement; train a run for more")
    if batch_size is not None:
        check_number(batch_size, "--batch-size", integer=True, low=1)
    dev = resolve_device(device, "--device")
    out: list[Curve] = []
    for source in sources:
        if source.is_dir():
            if overrides:
                raise ConfigError("--set", f"overrides apply to configs, not to the run {source} "
                                  "(its own config.yaml is used as trained)")
            out += measure_run(source, dev, batch_size)
        else:
            out += measure_config(source, overrides, steps, dev, batch_size)
    return out


def write_csv(rows: list[Curve], path: Path) -> Path:
    """Long format: label, stage, layer, t, grad_norm (one row per time step)."""
    import csv
    import io

    from rnnlab.rundir.files import write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "stage", "layer", "t", "grad_norm"])
    for c in rows:
        writer.writerows([c.label, c.stage, c.layer, t, repr(v)] for t, v in enumerate(c.norms))
    write_text(path, buffer.getvalue())
    return path
