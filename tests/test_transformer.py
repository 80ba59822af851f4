"""Transformer blocks checked against torch.nn.TransformerEncoderLayer / DecoderLayer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmbook_utils.attention import causal_mask, padding_mask
from llmbook_utils.transformer import (
    DecoderBlock,
    EncoderBlock,
    FeedForward,
    Transformer,
    TransformerConfig,
)

C, N_HEADS, D_FF = 16, 4, 32


pytestmark = pytest.mark.usefixtures("one_thread")


def _copy_attention(ours, ref: nn.MultiheadAttention) -> None:
    ref.in_proj_weight.copy_(
        torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
    )
    ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
    ref.out_proj.weight.copy_(ours.out_proj.weight)
    ref.out_proj.bias.copy_(ours.out_proj.bias)


def _copy_common(ours, ref) -> None:
    """Feed-forward and LayerNorm weights: same layout, different names."""
    ref.linear1.load_state_dict(ours.ff.linear1.state_dict())
    ref.linear2.load_state_dict(ours.ff.linear2.state_dict())
    for i in (1, 2, 3):
        if hasattr(ours, f"norm{i}"):
            getattr(ref, f"norm{i}").load_state_dict(getattr(ours, f"norm{i}").state_dict())


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_formula(activation: str) -> None:
    torch.manual_seed(0)
    ff = FeedForward(C, D_FF, activation=activation)
    x = torch.randn(2, 3, C)
    act = F.relu if activation == "relu" else F.gelu
    expected = act(x @ ff.linear1.weight.T + ff.linear1.bias) @ ff.linear2.weight.T
    torch.testing.assert_close(ff(x), expected + ff.linear2.bias)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_matches_torch(norm_first: bool) -> None:
    torch.manual_seed(0)
    ours = EncoderBlock(C, N_HEADS, D_FF, dropout=0.0, norm_first=norm_first).eval()
    ref = nn.TransformerEncoderLayer(
        C, N_HEADS, D_FF, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    with torch.no_grad():
        # Make the LayerNorm affine parameters non-trivial so that a mix-up would show.
        for p in ours.parameters():
            p.add_(0.1 * torch.randn_like(p))
        _copy_attention(ours.self_attn, ref.self_attn)
        _copy_common(ours, ref)
    x = torch.randn(2, 6, C)
    keep = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    expected = ref(x, src_key_padding_mask=~keep)  # torch: True = padding
    out, _ = ours(x, mask=padding_mask(keep))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_matches_torch(norm_first: bool) -> None:
    torch.manual_seed(0)
    ours = DecoderBlock(C, N_HEADS, D_FF, dropout=0.0, norm_first=norm_first).eval()
    ref = nn.TransformerDecoderLayer(
        C, N_HEADS, D_FF, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1 * torch.randn_like(p))
        _copy_attention(ours.self_attn, ref.self_attn)
        _copy_attention(ours.cross_attn, ref.multihead_attn)
        _copy_common(ours, ref)
    x, memory = torch.randn(2, 5, C), torch.randn(2, 7, C)
    keep = torch.ones(2, 7, dtype=torch.bool)
    keep[1, -3:] = False
    expected = ref(x, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=~keep)
    out, weights = ours(x, memory, memory_mask=padding_mask(keep), return_weights=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert weights.shape == (2, N_HEADS, 5, 7)
    assert (weights[1, :, :, -3:] == 0).all()  # no attention to padded source positions


def test_base_config_parameter_count() -> None:
    """The paper's base model: "65M" parameters (Table 3); exactly 63,082,496 here."""
    config = TransformerConfig.from_name("base")
    assert (config.d_model, config.n_heads, config.d_ff) == (512, 8, 2048)
    with torch.device("meta"):
        model = Transformer(config)
    n = model.num_parameters()
    assert 63_000_000 <= n <= 65_500_000
    assert n == 63_082_496
    assert model.out_proj.weight is model.src_emb.weight is model.tgt_emb.weight


def _tiny_model(**overrides) -> Transformer:
    torch.manual_seed(0)
    config = TransformerConfig.from_name(
        "tiny", src_vocab_size=20, tgt_vocab_size=20, dropout=0.0, **overrides
    )
    return Transformer(config).eval()


@pytest.mark.parametrize("norm_first", [False, True])
def test_source_padding_does_not_change_the_output(norm_first: bool) -> None:
    model = _tiny_model(norm_first=norm_first)
    src = torch.randint(1, 20, (2, 6))
    tgt_in = torch.randint(1, 20, (2, 4))
    padded = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], dim=1)  # pad_id = 0
    logits, _ = model(src, tgt_in)
    logits_padded, _ = model(padded, tgt_in)
    torch.testing.assert_close(logits_padded, logits, atol=1e-5, rtol=1e-5)
    maps = model.cross_attention_maps(padded, tgt_in)
    assert maps.shape == (2, 2, 4, 4, 9)  # (B, L, H, Tt, Ts)
    assert (maps[..., 6:] == 0).all()


def test_loss_ignores_padding_and_decoder_is_causal() -> None:
    model = _tiny_model()
    src = torch.randint(1, 20, (2, 5))
    tgt_in = torch.randint(1, 20, (2, 6))
    targets = torch.randint(1, 20, (2, 6))
    targets[0, -2:] = 0
    logits, loss = model(src, tgt_in, targets)
    keep = targets != 0
    expected = F.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(loss, expected)
    changed = tgt_in.clone()
    changed[:, 4] = (changed[:, 4] % 19) + 1
    torch.testing.assert_close(model(src, changed)[0][:, :4], logits[:, :4])


def test_greedy_decode_and_training_a_copy_task() -> None:
    """A tiny model learns to copy short sequences; greedy decoding then reproduces them."""
    model = _tiny_model()
    model.train()
    bos, eos = 1, 2
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, 20, (16, 5), generator=g)
    tgt = torch.cat([src, torch.full((16, 1), eos)], dim=1)
    tgt_in = torch.cat([torch.full((16, 1), bos), src], dim=1)
    for _ in range(150):
        _, loss = model(src, tgt_in, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    out = model.greedy_decode(src[:4], max_len=10, bos_id=bos, eos_id=eos)
    assert model.training  # mode restored
    assert torch.equal(out[:, 1:7], tgt[:4])
    assert out.shape[1] == 7  # stopped once every row produced EOS


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=4"):
        TransformerConfig(10, 10, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="unknown Transformer preset 'huge'"):
        TransformerConfig.from_name("huge")
    with pytest.raises(ValueError, match="src_vocab_size=5 == tgt_vocab_size=6"):
        TransformerConfig(5, 6, share_embeddings=True)
    with pytest.raises(ValueError, match="activation='tanh'"):
        FeedForward(4, 8, activation="tanh")
    model = _tiny_model()
    with pytest.raises(ValueError, match="src length 600 > max_len=512"):
        model(torch.ones(1, 600, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="same batch size"):
        model(torch.ones(2, 4, dtype=torch.long), torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets shape \(1, 2\)"):
        model(
            torch.ones(1, 4, dtype=torch.long),
            torch.ones(1, 3, dtype=torch.long),
            torch.ones(1, 2, dtype=torch.long),
        )


def test_blocks_live_in_blocks_and_are_importable_from_transformer() -> None:
    import llmbook_utils.blocks as blocks
    import llmbook_utils.transformer as transformer

    for name in ("FeedForward", "EncoderBlock", "DecoderBlock", "ACTIVATIONS"):
        assert getattr(transformer, name) is getattr(blocks, name), name
