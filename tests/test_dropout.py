"""rnnlab.models.dropout: the CPU dropout with a 15-bit mask."""

import pytest
import torch
from torch.nn import functional as F

from rnnlab.models.dropout import Dropout, dropout


def test_identity_when_not_training_or_p_zero():
    x = torch.randn(4, 5)
    assert dropout(x, 0.3, training=False) is x
    assert dropout(x, 0.0, training=True) is x


def test_zeroes_the_expected_fraction_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = dropout(x, 0.25, training=True)
    zeros = (y == 0).float().mean().item()
    assert zeros == pytest.approx(0.25, abs=0.005)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))  # 0.25 is a multiple of 2^-15
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_gradient_is_the_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    y = dropout(x, 0.5, training=True)
    y.sum().backward()
    expected = torch.where(y != 0, torch.full_like(x, 2.0), torch.zeros_like(x))
    assert torch.equal(x.grad, expected)


def test_bf16_input_keeps_its_dtype():
    x = torch.randn(10, 10, dtype=torch.bfloat16)
    assert dropout(x, 0.2, training=True).dtype == torch.bfloat16


def test_seeded_masks_repeat():
    x = torch.randn(100, 100)
    torch.manual_seed(3)
    a = dropout(x, 0.2, training=True)
    torch.manual_seed(3)
    b = dropout(x, 0.2, training=True)
    assert torch.equal(a, b)


def test_module_follows_train_and_eval():
    module = Dropout(0.5)
    x = torch.ones(1000)
    assert (module(x) == 0).any()
    module.eval()
    assert torch.equal(module(x), x)
    assert "p=0.5" in repr(module)
    with pytest.raises(ValueError):
        Dropout(1.5)


def test_p_one_drops_everything():
    assert torch.equal(dropout(torch.ones(5), 1.0, training=True), F.dropout(torch.ones(5), 1.0, True))
