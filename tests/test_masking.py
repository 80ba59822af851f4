"""BERT's masking on a million tokens: the 15% and 80/10/10 rates, special tokens, and agreement
in distribution with transformers' DataCollatorForLanguageModeling (token and whole-word)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import transformers
from scipy.stats import chi2_contingency

from llmbook_utils.data import IGNORE_INDEX, load_shakespeare, mask_tokens
from llmbook_utils.hf import local_model_dir
from llmbook_utils.wwm import whole_word_mask, word_ids_from_tokens


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(str(local_model_dir("minilm")))


@pytest.fixture(scope="module")
def million(tokenizer):
    """2,048 rows of 512 ids: [CLS] a [SEP] b [SEP], then padding; over 1M maskable tokens."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1_000, tokenizer.vocab_size, (2_048, 512), generator=gen)
    ids[:, 0] = tokenizer.cls_token_id
    ids[:, 200] = ids[:, 480] = tokenizer.sep_token_id
    ids[::4, 481:] = tokenizer.pad_token_id  # every fourth row is padded
    return ids


def special_ids(tokenizer):
    return [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]


def corruption_counts(ids, inputs, labels, mask_id):
    """(selected, [MASK], random, unchanged) counts: the 80/10/10 split of the selected."""
    selected = labels != IGNORE_INDEX
    masked = selected & (inputs == mask_id)
    kept = selected & (inputs == ids)
    return np.array([selected.sum(), masked.sum(), (selected & ~masked & ~kept).sum(), kept.sum()])


def test_fifteen_percent_and_80_10_10_on_a_million_tokens(tokenizer, million):
    specials = special_ids(tokenizer)
    gen = torch.Generator().manual_seed(1)
    inputs, labels = mask_tokens(
        million, tokenizer.vocab_size, tokenizer.mask_token_id, specials, generator=gen
    )
    is_special = torch.isin(million, torch.tensor(specials))
    n_maskable = int((~is_special).sum())
    assert n_maskable > 1_000_000
    selected, masked, randomised, kept = corruption_counts(
        million, inputs, labels, tokenizer.mask_token_id
    )
    assert abs(selected / n_maskable - 0.15) < 0.001  # 15% +- 0.1%
    assert abs(masked / selected - 0.8) < 0.003  # 80/10/10 +- 0.3%
    assert abs(randomised / selected - 0.1) < 0.003
    assert abs(kept / selected - 0.1) < 0.003
    # never a special token: not selected, not changed, never drawn as a random replacement
    assert not (labels[is_special] != IGNORE_INDEX).any()
    assert torch.equal(inputs[is_special], million[is_special])
    mask_id = tokenizer.mask_token_id
    random_tokens = inputs[(labels != IGNORE_INDEX) & (inputs != million) & (inputs != mask_id)]
    assert len(random_tokens) > 10_000
    assert not torch.isin(random_tokens, torch.tensor([*specials, mask_id])).any()


def test_agrees_in_distribution_with_data_collator_for_language_modeling(tokenizer, million):
    specials = special_ids(tokenizer)
    ours_in, ours_lab = mask_tokens(
        million,
        tokenizer.vocab_size,
        tokenizer.mask_token_id,
        specials,
        generator=torch.Generator().manual_seed(2),
    )
    collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=3)
    hf = collator([{"input_ids": row} for row in million])
    hf_in, hf_lab = hf["input_ids"], hf["labels"]
    assert torch.equal(hf_lab[hf_lab != -100], million[hf_lab != -100])  # same label format
    ours = corruption_counts(million, ours_in, ours_lab, tokenizer.mask_token_id)
    theirs = corruption_counts(million, hf_in, hf_lab, tokenizer.mask_token_id)
    n_maskable = int((~torch.isin(million, torch.tensor(specials))).sum())

    # the selection rate: a two-sample test of proportions
    table = [[ours[0], n_maskable - ours[0]], [theirs[0], n_maskable - theirs[0]]]
    assert chi2_contingency(table).pvalue > 1e-3
    # the split of the selected tokens into [MASK] / random / unchanged
    assert chi2_contingency([ours[1:], theirs[1:]]).pvalue > 1e-3
    # how many tokens each row gets selected (binomial in both), in bins
    bins = np.array([0, 50, 55, 60, 65, 70, 75, 1_000])
    rows = [np.histogram((lab != -100).sum(1).numpy(), bins)[0] for lab in (ours_lab, hf_lab)]
    assert chi2_contingency(rows).pvalue > 1e-3
    # where the selected tokens lie: the rate over positions (in 8 bands of 64)
    bands = [((lab != -100).reshape(-1, 8, 64).sum((0, 2))).numpy() for lab in (ours_lab, hf_lab)]
    assert chi2_contingency(bands).pvalue > 1e-3
    # which ids the random replacements take: uniform over the vocabulary in both
    # (ours leaves out the 5 special ids of 30,522; the collator may draw them)
    draws = []
    for inputs, labels in ((ours_in, ours_lab), (hf_in, hf_lab)):
        is_random = (labels != -100) & (inputs != million) & (inputs != tokenizer.mask_token_id)
        draws.append(np.histogram(inputs[is_random].numpy(), np.linspace(0, 30_522, 11))[0])
    assert chi2_contingency(draws).pvalue > 1e-3


@pytest.fixture(scope="module")
def shakespeare_words(tokenizer):
    """3,000 lines of Shakespeare without punctuation, as padded WordPiece batches."""
    lines = [line for line in load_shakespeare().validation.splitlines() if len(line) > 30]
    lines = [re.sub(r"[^A-Za-z ]", " ", line) for line in lines[:3_000]]
    return lines, tokenizer(lines, padding=True, return_offsets_mapping=True)


def test_word_ids_from_tokens_equal_the_fast_tokenizers(tokenizer, shakespeare_words):
    _, batch = shakespeare_words
    text = "Unkindness may do much; and his unkindness may defeat my life."
    encoding = tokenizer(text)
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    expected = [-1 if w is None else w for w in encoding.word_ids()]
    assert word_ids_from_tokens(tokens) == expected
    assert any(t.startswith("##") for t in tokens)
    for b in range(200):
        tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][b])
        expected = [-1 if w is None else w for w in batch.word_ids(b)]
        assert word_ids_from_tokens(tokens) == expected


def test_whole_word_mask_agrees_with_the_collators_whole_word_masking(tokenizer, shakespeare_words):
    _, batch = shakespeare_words
    ids = torch.tensor(batch["input_ids"])
    words = torch.tensor(
        [word_ids_from_tokens(tokenizer.convert_ids_to_tokens(row)) for row in batch["input_ids"]]
    )
    n_words = sum(len(set(row.tolist()) - {-1}) for row in words)
    n_tokens = int((words >= 0).sum())
    assert n_tokens > 1.1 * n_words  # some words have several pieces
    specials = special_ids(tokenizer)

    # our default: 80/10/10 per word, and every word all-or-nothing
    inputs, labels = whole_word_mask(
        ids,
        words,
        tokenizer.vocab_size,
        tokenizer.mask_token_id,
        specials,
        generator=torch.Generator().manual_seed(0),
    )
    selected = labels != IGNORE_INDEX
    for b in range(len(ids)):
        for w in set(words[b].tolist()) - {-1}:
            in_word = words[b] == w
            assert selected[b][in_word].all() or not selected[b][in_word].any()
            assert (inputs[b][in_word] == tokenizer.mask_token_id).all() or not (
                inputs[b][in_word] == tokenizer.mask_token_id
            ).any()
    assert not selected[words < 0].any()

    # with the collator's split (everything [MASK]), compare with DataCollatorForLanguageModeling
    collator = transformers.DataCollatorForLanguageModeling(
        tokenizer,
        whole_word_mask=True,
        mask_replace_prob=1.0,
        random_replace_prob=0.0,
        mlm_probability=0.15,
        seed=0,
    )
    examples = [
        {"input_ids": i, "offset_mapping": o}
        for i, o in zip(batch["input_ids"], batch["offset_mapping"], strict=True)
    ]
    counts = {}
    for name in ("ours", "transformers"):
        selected_tokens, selected_words = 0, 0
        for seed in range(4):  # 4 draws of the 3,000 lines
            if name == "ours":
                inputs, labels = whole_word_mask(
                    ids,
                    words,
                    tokenizer.vocab_size,
                    tokenizer.mask_token_id,
                    specials,
                    mask_replace_prob=1.0,
                    random_replace_prob=0.0,
                    generator=torch.Generator().manual_seed(seed),
                )
            else:
                collator.seed, collator.generator = seed, None
                out = collator(examples)
                inputs, labels = out["input_ids"], out["labels"]
            chosen = labels != IGNORE_INDEX
            assert torch.equal(chosen, inputs == tokenizer.mask_token_id)  # all [MASK]
            selected_tokens += int(chosen.sum())
            selected_words += sum(len(set(words[b][chosen[b]].tolist())) for b in range(len(ids)))
        counts[name] = (selected_words, selected_tokens)
        assert abs(selected_words / (4 * n_words) - 0.15) < 0.005
    (ours_w, ours_t), (hf_w, hf_t) = counts["ours"], counts["transformers"]
    words_table = [[ours_w, 4 * n_words - ours_w], [hf_w, 4 * n_words - hf_w]]
    assert chi2_contingency(words_table).pvalue > 1e-3
    tokens_table = [[ours_t, 4 * n_tokens - ours_t], [hf_t, 4 * n_tokens - hf_t]]
    assert chi2_contingency(tokens_table).pvalue > 1e-3


def test_whole_word_mask_rejects_bad_input():
    ids = torch.arange(10)
    with pytest.raises(ValueError, match="word_ids shape"):
        whole_word_mask(ids, torch.zeros(9, dtype=torch.long), 20, 3, [0])
    with pytest.raises(ValueError, match="mlm_prob=0.0"):
        whole_word_mask(ids, torch.zeros(10, dtype=torch.long), 20, 3, [0], mlm_prob=0.0)
    with pytest.raises(ValueError, match="sum to at most 1"):
        whole_word_mask(
            ids,
            torch.zeros(10, dtype=torch.long),
            20,
            3,
            [0],
            mask_replace_prob=0.9,
            random_replace_prob=0.2,
        )
