"""Attention checked against PyTorch: F.scaled_dot_product_attention and nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmbook_utils.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)

B, H, T, D = 2, 3, 5, 8


@pytest.fixture
def qkv() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(B, H, T, D, generator=g) for _ in range(3))


def test_causal_mask_is_lower_triangular() -> None:
    expected = torch.tensor([[i >= j for j in range(4)] for i in range(4)])
    assert torch.equal(causal_mask(4), expected)
    # Queries that are the last 2 of 4 positions (KV-cache decoding) see everything up to them.
    assert torch.equal(causal_mask(2, 4), expected[2:])


def test_padding_mask_shape_and_values() -> None:
    m = padding_mask(torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert m.shape == (2, 1, 1, 3) and m.dtype == torch.bool
    assert m[0, 0, 0].tolist() == [True, True, False]


@pytest.mark.parametrize("kind", ["none", "causal", "padding"])
def test_sdpa_matches_pytorch(qkv, kind: str) -> None:
    q, k, v = qkv
    mask = {
        "none": None,
        "causal": causal_mask(T),
        "padding": padding_mask(torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])),
    }[kind]
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T), atol=1e-6, rtol=0)
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


def test_fully_masked_row_gives_zeros_like_pytorch(qkv) -> None:
    q, k, v = qkv
    mask = torch.ones(T, T, dtype=torch.bool)
    mask[1] = False
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert not weights.isnan().any() and (weights[:, :, 1] == 0).all()


def _copy_to_torch(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        ref.in_proj_weight.copy_(
            torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
        )
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)


@pytest.mark.parametrize("cross", [False, True])
def test_multihead_attention_matches_torch(cross: bool) -> None:
    torch.manual_seed(0)
    C, n_heads, Tq, Tk = 16, 4, 5, 7
    ours = MultiHeadAttention(C, n_heads).eval()
    ref = nn.MultiheadAttention(C, n_heads, batch_first=True).eval()
    _copy_to_torch(ours, ref)
    x = torch.randn(B, Tq, C)
    memory = torch.randn(B, Tk, C) if cross else x
    keep = torch.ones(B, memory.size(1), dtype=torch.bool)
    keep[0, -2:] = False  # the last two keys of the first sequence are padding
    key_padding_mask = ~keep  # torch: True = ignore

    ref_out, ref_w = ref(
        x, memory, memory, key_padding_mask=key_padding_mask, average_attn_weights=False
    )
    key = memory if cross else None
    out, weights = ours(x, key, mask=padding_mask(keep), return_weights=True)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, ref_w, atol=1e-5, rtol=1e-5)

    fused, none = ours(x, key, mask=padding_mask(keep))  # fused kernel path
    assert none is None
    torch.testing.assert_close(fused, out, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # inference takes the same path through the modules
        inference, _ = ours(x, key, mask=padding_mask(keep))
    torch.testing.assert_close(inference, out, atol=1e-5, rtol=1e-5)


def test_hooks_on_projections_fire_in_training_and_evaluation() -> None:
    """A hook (or a LoRA wrapper) on q_proj acts identically with and without gradients."""
    torch.manual_seed(0)
    C = 16
    mha = MultiHeadAttention(C, 4)
    x = torch.randn(B, T, C)
    calls = []
    handles = [
        getattr(mha, name).register_forward_hook(lambda m, i, o, n=name: calls.append(n))
        for name in ("q_proj", "k_proj", "v_proj", "out_proj")
    ]
    mha.train()
    mha(x, is_causal=True)[0].sum().backward()  # training self-attention, grad enabled
    assert calls == ["q_proj", "k_proj", "v_proj", "out_proj"]
    calls.clear()
    with torch.no_grad():
        mha.eval()(x, is_causal=True)
    assert calls == ["q_proj", "k_proj", "v_proj", "out_proj"]
    for handle in handles:
        handle.remove()

    # A hook that replaces q_proj's output by zeros equals zeroing q_proj's weights, in both modes.
    zeroed = MultiHeadAttention(C, 4)
    zeroed.load_state_dict(mha.state_dict())
    with torch.no_grad():
        zeroed.q_proj.weight.zero_()
        zeroed.q_proj.bias.zero_()
    mha.q_proj.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    for training in (True, False):
        mha.train(training)
        zeroed.train(training)
        with torch.set_grad_enabled(training):
            torch.testing.assert_close(mha(x, is_causal=True)[0], zeroed(x, is_causal=True)[0])


def test_causal_flag_matches_explicit_mask_and_torch() -> None:
    torch.manual_seed(0)
    C, n_heads = 16, 2
    ours = MultiHeadAttention(C, n_heads).eval()
    ref = nn.MultiheadAttention(C, n_heads, batch_first=True).eval()
    _copy_to_torch(ours, ref)
    x = torch.randn(B, T, C)
    ref_out, _ = ref(x, x, x, attn_mask=~causal_mask(T), need_weights=False)
    fast, _ = ours(x, is_causal=True)
    explicit, weights = ours(x, mask=causal_mask(T), return_weights=True)
    torch.testing.assert_close(fast, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(explicit, ref_out, atol=1e-5, rtol=1e-5)
    assert torch.equal(weights[0, 0] > 0, causal_mask(T))


def test_kv_cache_decoding_equals_full_causal_pass() -> None:
    torch.manual_seed(0)
    C = 16
    mha = MultiHeadAttention(C, 4).eval()
    x = torch.randn(B, T, C)
    full, _ = mha(x, is_causal=True)
    cache = KVCache(max_len=T)
    first, _ = mha(x[:, :2], is_causal=True, kv_cache=cache)  # a 2-token prompt
    steps = [mha(x[:, t : t + 1], is_causal=True, kv_cache=cache)[0] for t in range(2, T)]
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="max_len=5"):
        mha(x[:, :1], is_causal=True, kv_cache=cache)


def test_bad_inputs_raise_value_error(qkv) -> None:
    q, k, v = qkv
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=3"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        scaled_dot_product_attention(q, k, v, torch.ones(T, T))
    with pytest.raises(ValueError, match="head size 8 != k head size 4"):
        scaled_dot_product_attention(q, k[..., :4], v)
    mha = MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match=r"query must be \(B, T, 16\)"):
        mha(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(torch.randn(2, 3, 16), mask=torch.ones(2, 1, 1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, Tk\)"):
        padding_mask(torch.ones(2, 3, 4))
