from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnlab.models.elman import ElmanRNN

CASES = list(itertools.product([1, 2], [False, True], ["tanh", "relu"], [True, False], [True, False]))


def pair(layers: int, bidirectional: bool, nonlinearity: str, batch_first: bool, bias: bool,
         dropout: float = 0.0) -> tuple[nn.RNN, ElmanRNN]:
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, nonlinearity=nonlinearity,
                  batch_first=batch_first, bias=bias, dropout=dropout)
    ref = nn.RNN(5, 7, **kwargs).double()
    fast = ElmanRNN(5, 7, **kwargs).double()
    fast.load_state_dict(ref.state_dict())  # the same parameters, so checkpoints are interchangeable
    return ref, fast


def outputs_and_grads(module: nn.Module, x: torch.Tensor, h0: torch.Tensor | None) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    h0 = None if h0 is None else h0.clone().requires_grad_()
    out, h_n = module(x, h0)
    # a loss that weighs every output element differently, plus the final states
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out.sin() * weights).sum() + (h_n ** 2).sum()
    inputs = [x] + ([h0] if h0 is not None else []) + list(module.parameters())
    return [out, h_n, *torch.autograd.grad(loss, inputs)]


@pytest.mark.parametrize("layers,bidirectional,nonlinearity,batch_first,bias", CASES)
@pytest.mark.parametrize("steps", [1, 9])
@pytest.mark.parametrize("given_h0", [False, True])
def test_same_outputs_and_gradients_as_nn_rnn(layers: int, bidirectional: bool, nonlinearity: str,
                                               batch_first: bool, bias: bool, steps: int,
                                               given_h0: bool) -> None:
    torch.manual_seed(0)
    ref, fast = pair(layers, bidirectional, nonlinearity, batch_first, bias)
    x = torch.randn((4, steps, 5) if batch_first else (steps, 4, 5), dtype=torch.double)
    h0 = torch.randn(layers * (2 if bidirectional else 1), 4, 7, dtype=torch.double) if given_h0 else None
    expected, got = outputs_and_grads(ref, x, h0), outputs_and_grads(fast, x, h0)
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_float32_training_step_matches_and_is_one_autograd_node_per_layer() -> None:
    torch.manual_seed(1)
    ref, fast = nn.RNN(28, 64, batch_first=True), ElmanRNN(28, 64, batch_first=True)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(8, 28, 28)
    out, h_n = fast(x)
    assert type(out.grad_fn).__name__ == "TransposeBackward0"
    assert "ElmanLayer" in type(out.grad_fn.next_functions[0][0]).__name__
    for a, b in zip(outputs_and_grads(ref, x, None), outputs_and_grads(fast, x, None)):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_packed_sequences_and_eval_dropout_behave_as_nn_rnn() -> None:
    torch.manual_seed(2)
    ref, fast = pair(2, True, "tanh", True, True, dropout=0.5)
    ref.eval(), fast.eval()
    x = torch.randn(3, 6, 5, dtype=torch.double)
    packed = pack_padded_sequence(x, torch.tensor([6, 2, 4]), batch_first=True, enforce_sorted=False)
    for a, b in zip(ref(packed)[1], fast(packed)[1]):  # packed input goes to nn.RNN's own kernel
        torch.testing.assert_close(b, a)
    torch.testing.assert_close(fast(x)[0], ref(x)[0])  # dropout is off in eval mode


def test_dropout_between_layers_in_training() -> None:
    torch.manual_seed(3)
    fast = ElmanRNN(5, 7, num_layers=2, dropout=0.5, batch_first=True).train()
    x = torch.randn(4, 6, 5)
    a, b = fast(x)[0], fast(x)[0]
    assert not torch.equal(a, b)  # a fresh mask on the first layer's outputs each call
    one_layer = ElmanRNN(5, 7, num_layers=1, batch_first=True).train()
    assert torch.equal(one_layer(x)[0], one_layer(x)[0])  # no dropout without a layer above


def test_bf16_autocast_computes_the_layer_in_float32() -> None:
    torch.manual_seed(4)
    ref, fast = nn.RNN(5, 7, batch_first=True), ElmanRNN(5, 7, batch_first=True)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(4, 6, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, h_n = fast(x)
    assert out.dtype == h_n.dtype == torch.float32
    torch.testing.assert_close(out, ref(x)[0])
    out.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in fast.parameters())


@pytest.mark.filterwarnings("ignore:torch.is_autocast_cpu_enabled:DeprecationWarning")  # old torch's API
def test_older_torch_leaves_autocast_regions_to_nn_rnn(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch < 2.4 has no torch.amp.custom_fwd: there autocast regions use nn.RNN's own kernel."""
    from rnnlab.models import elman

    monkeypatch.setattr(elman, "_CPU_AMP", False)
    fast = ElmanRNN(5, 7, batch_first=True)
    x = torch.randn(4, 6, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = fast(x)
    assert "ElmanLayer" not in type(out.grad_fn).__name__
    assert "ElmanLayer" in type(fast(x)[0].grad_fn.next_functions[0][0]).__name__  # outside: the fast path


def test_wrong_state_shape_is_reported_like_nn_rnn() -> None:
    fast = ElmanRNN(5, 7, batch_first=True)
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        fast(torch.randn(4, 6, 5), torch.zeros(1, 3, 7))
