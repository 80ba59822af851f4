"""Induction-head scores on hand-built attention maps, head ablation against zeroed weights, and
the logit lens against the GPT's own output and a hand computation of layer 0."""

import pytest
import torch
import torch.nn.functional as F

from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.interpret import (
    AttentionOnlyConfig,
    AttentionOnlyTransformer,
    ablate_heads,
    induction_batch,
    induction_head_scores,
    logit_lens,
    previous_token_scores,
    repeated_half_loss,
)


def test_induction_batch_repeats_the_first_n_tokens():
    g = torch.Generator().manual_seed(0)
    tokens, n = induction_batch(6, 50, 40, 5, 12, generator=g)
    assert tokens.shape == (6, 40) and n.min() >= 5 and n.max() <= 12
    for row, length in zip(tokens, n.tolist(), strict=True):
        assert torch.equal(row[length : 2 * length], row[:length])
    fixed, n_fixed = induction_batch(3, 50, 20, 10, generator=g)
    assert torch.equal(fixed[:, 10:], fixed[:, :10]) and (n_fixed == 10).all()
    with pytest.raises(ValueError, match="seq_len=10"):
        induction_batch(1, 50, 10, 6)


def test_scores_of_hand_built_maps():
    n, T = 4, 8
    perfect = torch.zeros(T, T)
    for t in range(T):
        perfect[t, t - n + 1 if t >= n else 0] = 1.0  # induction pattern in the second copy
    previous = torch.zeros(T, T)
    previous[0, 0] = 1.0
    for t in range(1, T):
        previous[t, t - 1] = 1.0
    uniform = torch.tril(torch.ones(T, T))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    maps = torch.stack([perfect, previous, uniform])[None, None]  # (1, 1, 3, T, T)
    scores = induction_head_scores(maps, n)[0]
    expected_uniform = sum(1 / (t + 1) for t in range(n, 2 * n)) / n  # row t is uniform over t+1
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.0, expected_uniform]))
    torch.testing.assert_close(previous_token_scores(maps)[0, 1], torch.tensor(1.0))


def test_ablating_a_head_equals_zeroing_its_columns_of_out_proj():
    torch.manual_seed(0)
    config = AttentionOnlyConfig(vocab_size=30, context_length=16, d_model=16, n_heads=4)
    model = AttentionOnlyTransformer(config)
    idx = torch.randint(0, 30, (3, 16))
    with ablate_heads(model, [(1, 2), (0, 0)]):
        ablated, _ = model(idx)
    reference = AttentionOnlyTransformer(model.config)
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        reference.blocks[1].attn.out_proj.weight[:, 8:12] = 0.0  # head 2 of 4, head size 4
        reference.blocks[0].attn.out_proj.weight[:, 0:4] = 0.0
    torch.testing.assert_close(ablated, reference(idx)[0])
    with torch.no_grad():
        plain = model(idx)[0]
    assert not torch.allclose(plain, ablated)  # the hooks are gone after the with block
    with pytest.raises(ValueError, match=r"head \(2, 0\)"), ablate_heads(model, [(2, 0)]):
        pass


def test_attention_only_loss_is_cross_entropy_and_maps_are_causal():
    torch.manual_seed(1)
    model = AttentionOnlyTransformer(AttentionOnlyConfig(vocab_size=12, context_length=10))
    idx = torch.randint(0, 12, (2, 10))
    logits, loss = model(idx[:, :-1], idx[:, 1:])
    torch.testing.assert_close(
        loss, F.cross_entropy(logits.reshape(-1, 12), idx[:, 1:].reshape(-1))
    )
    maps = model.attention_maps(idx)
    assert maps.shape == (2, 2, 4, 10, 10)
    assert torch.all(torch.triu(maps, diagonal=1) == 0)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 4, 10))
    repeated = torch.cat([idx[:, :5], idx[:, :5]], dim=1)  # (2, 10), n = 5
    with torch.no_grad():
        full, _ = model(repeated)
    by_hand = F.cross_entropy(full[:, 5:9].reshape(-1, 12), repeated[:, 6:10].reshape(-1))
    assert repeated_half_loss(model, repeated, 5) == pytest.approx(by_hand.item(), rel=1e-5)


def test_logit_lens_last_layer_is_the_model_and_first_is_the_embedding():
    torch.manual_seed(2)
    gpt = GPT(GPTConfig(vocab_size=20, context_length=12, d_model=16, n_layers=3, n_heads=2))
    idx = torch.randint(0, 20, (2, 12))
    lens = logit_lens(gpt, idx)
    assert lens.shape == (4, 2, 12, 20)
    with torch.no_grad():
        logits, _ = gpt(idx)
        first = gpt.lm_head(gpt.norm_f(gpt.tok_emb.weight[idx] + gpt.pos_emb.weight[:12]))
    torch.testing.assert_close(lens[-1], F.log_softmax(logits, -1))
    torch.testing.assert_close(lens[0], F.log_softmax(first, -1))


def test_bad_configs_and_inputs_name_the_values():
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_heads=4"):
        AttentionOnlyConfig(vocab_size=10, context_length=8, d_model=30, n_heads=4)
    model = AttentionOnlyTransformer(AttentionOnlyConfig(vocab_size=10, context_length=8))
    with pytest.raises(ValueError, match="T <= 8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    gpt = GPT(GPTConfig(vocab_size=10, context_length=8, d_model=8, n_layers=1, n_heads=2))
    with pytest.raises(ValueError, match="T <= 8"):
        logit_lens(gpt, torch.zeros(1, 9, dtype=torch.long))
