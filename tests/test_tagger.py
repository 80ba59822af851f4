"""The BiLSTM(-CRF) tagger: padding, its losses against references, and a toy task."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from llmbook_utils.tagger import BiLSTMTagger, TaggerConfig, build_vocab, encode_batch

LABELS = ("O", "B-PER", "I-PER")
SENTENCES = [list("张三说"), list("李四在"), list("说了"), list("王五来了")]
TAGS = [["B-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"], ["O", "O"], ["B-PER", "I-PER", "O", "O"]]


def _model(use_crf=True, seed=0):
    torch.manual_seed(seed)
    vocab = build_vocab(SENTENCES)
    model = BiLSTMTagger(TaggerConfig(len(vocab), LABELS, 16, 16, dropout=0.0, use_crf=use_crf))
    return model.eval(), vocab


def test_padded_batch_equals_each_sentence_alone():
    model, vocab = _model()
    ids, mask, _ = encode_batch(SENTENCES, vocab)
    batch = model.emissions(ids, mask)
    for b, sentence in enumerate(SENTENCES):
        one_ids, one_mask, _ = encode_batch([sentence], vocab)
        alone = model.emissions(one_ids, one_mask)[0]
        torch.testing.assert_close(batch[b, : len(sentence)], alone, atol=1e-6, rtol=1e-5)


def test_softmax_loss_is_cross_entropy_over_real_characters():
    model, vocab = _model(use_crf=False)
    ids, mask, tag_ids = encode_batch(SENTENCES, vocab, TAGS, LABELS)
    logits, loss = model(ids, mask, tag_ids)
    flat = torch.cat([logits[b, : len(s)] for b, s in enumerate(SENTENCES)])
    gold = torch.tensor([LABELS.index(t) for row in TAGS for t in row])
    torch.testing.assert_close(loss, F.cross_entropy(flat, gold))


def test_crf_loss_is_minus_log_probability_by_enumeration():
    model, vocab = _model()
    with torch.no_grad():  # non-zero transitions, so the test sees them
        model.crf.transitions.normal_()
        model.crf.start.normal_()
        model.crf.end.normal_()
    ids, mask, tag_ids = encode_batch(SENTENCES[:1], vocab, TAGS[:1], LABELS)
    emissions, loss = model(ids, mask, tag_ids)
    transitions, start, end = model.crf._params()
    e = emissions[0]

    def score(y):
        s = start[y[0]] + e[0, y[0]] + end[y[-1]]
        return s + sum(transitions[y[t - 1], y[t]] + e[t, y[t]] for t in range(1, len(y)))

    scores = torch.stack([score(y) for y in itertools.product(range(3), repeat=len(e))])
    want = torch.logsumexp(scores, 0) - score(tag_ids[0].tolist())
    torch.testing.assert_close(loss, want, atol=1e-4, rtol=1e-4)


def test_tagger_learns_a_toy_task():
    model, vocab = _model()
    model.train()
    ids, mask, tag_ids = encode_batch(SENTENCES, vocab, TAGS, LABELS)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        model(ids, mask, tag_ids)[1].backward()
        opt.step()
    model.eval()
    want = [[LABELS.index(t) for t in row] for row in TAGS]
    assert model.predict(ids, mask) == want


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="dropout=1.5"):
        TaggerConfig(10, LABELS, dropout=1.5)
    with pytest.raises(ValueError, match="empty sentence"):
        encode_batch([[]], {"<pad>": 0, "<unk>": 1})
