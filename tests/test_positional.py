"""Positional encodings checked against the paper's formula and RoPE's defining properties."""

from __future__ import annotations

import math

import pytest
import torch

from llmbook_utils.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    sinusoidal_encoding,
)


@pytest.mark.parametrize("d_model", [16, 7])
def test_sinusoidal_matches_paper_formula(d_model: int) -> None:
    max_len = 50
    pe = sinusoidal_encoding(max_len, d_model)
    assert pe.shape == (max_len, d_model)
    expected = torch.zeros(max_len, d_model)
    for pos in range(max_len):
        for i in range(0, d_model, 2):  # i here is the even channel index 2i of the paper
            angle = pos / 10000 ** (i / d_model)
            expected[pos, i] = math.sin(angle)
            if i + 1 < d_model:
                expected[pos, i + 1] = math.cos(angle)
    torch.testing.assert_close(pe, expected, atol=1e-5, rtol=0)


def test_learned_positional_embedding_slices_rows() -> None:
    torch.manual_seed(0)
    emb = LearnedPositionalEmbedding(10, 4)
    assert torch.equal(emb(3, offset=2), emb.weight[2:5])
    with pytest.raises(ValueError, match="max_len=10"):
        emb(4, offset=8)


def test_rotary_preserves_norms() -> None:
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=8, max_len=32)
    x = torch.randn(2, 3, 32, 8)
    torch.testing.assert_close(rope.rotate(x).norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rope.rotate(x[:, :, :1]), x[:, :, :1])  # position 0: identity


def test_rotary_dot_product_depends_only_on_offset() -> None:
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=16, max_len=64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m: int, n: int) -> float:  # q at position m, k at position n
        return (rope.rotate(q, offset=m) * rope.rotate(k, offset=n)).sum().item()

    for m, n in [(5, 2), (9, 9), (3, 11)]:
        for shift in (1, 7, 40):
            assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)  # but it does depend on m - n


def test_rotary_matches_complex_rotation() -> None:
    """RoFormer's eq. 34: the pair (x_2i, x_2i+1) as a complex number times e^{i m theta_i}."""
    torch.manual_seed(0)
    D, T = 8, 6
    rope = RotaryEmbedding(D, T, base=10000)
    x = torch.randn(T, D)
    theta = torch.tensor([10000 ** (-2 * i / D) for i in range(D // 2)])
    z = torch.complex(x[:, 0::2], x[:, 1::2]) * torch.polar(
        torch.ones(T, D // 2), torch.arange(T)[:, None] * theta
    )
    expected = torch.stack([z.real, z.imag], dim=-1).flatten(-2)
    torch.testing.assert_close(rope.rotate(x), expected, atol=1e-5, rtol=1e-5)


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="head_dim=7"):
        RotaryEmbedding(7, 10)
    rope = RotaryEmbedding(8, 10)
    with pytest.raises(ValueError, match="max_len=10"):
        rope.rotate(torch.randn(1, 1, 11, 8))
    with pytest.raises(ValueError, match="head_dim=8"):
        rope.rotate(torch.randn(1, 1, 4, 6))
    with pytest.raises(ValueError, match="max_len=0"):
        sinusoidal_encoding(0, 4)
