"""Permutation-LM masks against transformers' DataCollatorForPermutationLanguageModeling and
against XLNet itself: a target's prediction depends only on what comes before it in the order."""

from __future__ import annotations

import pytest
import torch
import transformers

from llmbook_utils.hf import local_model_dir
from llmbook_utils.plm import order_to_ranks, permutation_masks, sample_factorisation_order


def test_full_permutation_is_a_causal_mask_in_the_permuted_order():
    gen = torch.Generator().manual_seed(0)
    order = sample_factorisation_order(9, generator=gen)
    content, query = permutation_masks(order)
    # Re-indexed by the order, the query stream is strictly causal and the content stream causal
    strict = torch.ones(9, 9, dtype=torch.bool).tril(-1)
    assert torch.equal(query[order][:, order], strict)
    assert torch.equal(content[order][:, order], strict | torch.eye(9, dtype=torch.bool))
    # The identity order is the ordinary left-to-right causal mask of a GPT
    content_id, _ = permutation_masks(torch.arange(5))
    assert torch.equal(content_id, torch.ones(5, 5, dtype=torch.bool).tril())
    assert torch.equal(order_to_ranks(order)[order], torch.arange(9))


def test_batched_orders_and_bad_input():
    orders = sample_factorisation_order(6, batch_size=3, generator=torch.Generator().manual_seed(1))
    content, query = permutation_masks(orders)
    assert content.shape == query.shape == (3, 6, 6)
    for b in range(3):
        assert torch.equal(permutation_masks(orders[b])[1], query[b])
    with pytest.raises(ValueError, match="permutation"):
        permutation_masks(torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="targets"):
        permutation_masks(torch.arange(4), torch.ones(5, dtype=torch.bool))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_query_mask_is_the_complement_of_the_collators_perm_mask(monkeypatch, seed):
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(local_model_dir("minilm")))
    collator = transformers.DataCollatorForPermutationLanguageModeling(tokenizer)
    # Record the permutations the collator draws, to rebuild its factorisation orders.
    drawn = []
    randperm = torch.randperm

    def recording_randperm(*args, **kwargs):
        drawn.append(randperm(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(torch, "randperm", recording_randperm)
    torch.manual_seed(seed)
    seq_len = 24  # even, as the collator requires
    examples = [torch.randint(1000, 2000, (seq_len,)) for _ in range(4)]  # no special tokens
    batch = collator(examples)
    monkeypatch.undo()
    assert len(drawn) == 4
    for b, perm in enumerate(drawn):
        # The collator's rank of each position: both halves permuted by the same perm
        ranks = torch.arange(seq_len).reshape(2, seq_len // 2).T[perm].T.flatten()
        order = ranks.argsort()
        targets = batch["labels"][b] != -100
        assert targets.any()
        _, query = permutation_masks(order, targets)
        assert torch.equal(query, batch["perm_mask"][b] == 0)


def test_xlnet_with_our_masks_sees_only_earlier_tokens_in_the_order():
    torch.manual_seed(0)
    config = transformers.XLNetConfig(
        vocab_size=40, d_model=32, n_layer=2, n_head=2, d_inner=64, dropout=0.0
    )
    model = transformers.XLNetLMHeadModel(config).eval()
    seq_len, n_context = 10, 4
    order = sample_factorisation_order(seq_len, generator=torch.Generator().manual_seed(3))
    # Partial prediction, as in XLNet: the last 6 positions of the order are the targets (a
    # target that could see nothing at all would get a uniform, leaking attention row).
    targets = torch.zeros(seq_len, dtype=torch.bool)
    targets[order[n_context:]] = True
    _, query = permutation_masks(order, targets)
    perm_mask = (~query).float()[None]  # (1, T, T): XLNet's 1 = may not attend
    target_mapping = torch.eye(seq_len)[targets][None]  # (1, n_targets, T)

    def logits(ids):
        with torch.no_grad():
            out = model(ids[None], perm_mask=perm_mask, target_mapping=target_mapping)
        return out.logits[0]  # (n_targets, V), the targets in position order

    target_positions = targets.nonzero().squeeze(1).tolist()
    ids = torch.randint(0, 40, (seq_len,))
    base = logits(ids)
    for step, position in enumerate(order.tolist()):  # change the token of this step
        changed = ids.clone()
        changed[position] = (ids[position] + 1) % 40
        moved = (logits(changed) - base).abs().amax(dim=1) > 1e-6  # (n_targets,)
        later = set(order[max(step + 1, n_context) :].tolist())  # targets after this step
        expected = torch.tensor([p in later for p in target_positions])
        assert torch.equal(moved, expected), (step, position)
