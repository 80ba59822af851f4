"""conv2d via unfold against torch.nn.functional.conv2d and nn.Conv2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmbook_utils.conv import Conv2d, conv2d, conv_output_size


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "padding", "size"),
    [
        (1, 1, (3, 3), 1, 0, (8, 8)),
        (3, 5, (3, 3), 1, 1, (8, 8)),
        (2, 4, (5, 3), 2, 2, (9, 7)),
        (4, 6, (2, 2), (2, 1), (0, 1), (6, 5)),
        (1, 2, (1, 1), 3, 0, (7, 7)),
    ],
)
def test_conv2d_equals_torch(c_in, c_out, kernel, stride, padding, size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, c_in, *size, generator=g, dtype=torch.float64)
    w = torch.randn(c_out, c_in, *kernel, generator=g, dtype=torch.float64)
    b = torch.randn(c_out, generator=g, dtype=torch.float64)
    ours = conv2d(x, w, b, stride=stride, padding=padding)
    ref = F.conv2d(x, w, b, stride=stride, padding=padding)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        conv2d(x, w, None, stride, padding), F.conv2d(x, w, None, stride, padding)
    )


def test_gradients_equal_torch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    grads = []
    for fn in (conv2d, F.conv2d):
        (fn(x, w, None, 2, 1) ** 2).sum().backward()
        grads.append((x.grad.clone(), w.grad.clone()))
        x.grad, w.grad = None, None
    for ours, ref in zip(*grads, strict=True):
        torch.testing.assert_close(ours, ref)


def test_layer_copies_weights_from_nn_conv2d():
    torch.manual_seed(0)
    ref = nn.Conv2d(3, 8, 3, stride=1, padding=1)
    ours = Conv2d(3, 8, 3, stride=1, padding=1)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-6, atol=1e-6)


def test_output_size_formula():
    assert conv_output_size(8, 3, padding=1, stride=1) == 8
    assert (
        conv_output_size(9, 5, padding=2, stride=2)
        == F.conv2d(torch.zeros(1, 1, 9, 9), torch.zeros(1, 1, 5, 5), stride=2, padding=2).shape[-1]
    )


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="C_in"):
        conv2d(torch.zeros(1, 3, 8, 8), torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="does not fit"):
        conv2d(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="stride"):
        conv2d(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3), stride=0)
