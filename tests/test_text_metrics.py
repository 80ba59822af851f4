"""text_metrics against the references: sacrebleu's corpus BLEU, rouge_score, hand-computed NLL."""

from __future__ import annotations

import math
import random

import pytest
import sacrebleu
import torch
import torch.nn.functional as F
from rouge_score import rouge_scorer

from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.text_metrics import (
    corpus_bleu,
    lcs_length,
    rouge,
    sliding_window_nll,
    tokenize_13a,
    window_starts,
)

_WORD_LINE = (
    "the a cat dog sat on mat king queen love war 3.5 1,000 well-known state-of-the-art "
    "don't it's (yes) \"quoted\" &amp; &lt;b&gt; e.g. U.S. 42-year-old x=y a/b #tag @user "
    "café naïve 中文 end. stop, what? wow! 2026 -- ... hello world"
)
WORDS = _WORD_LINE.split()


def _sentence(rng: random.Random, low: int = 0, high: int = 25) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _perturb(rng: random.Random, sentence: str) -> str:
    words = sentence.split()
    out = []
    for w in words:
        r = rng.random()
        if r < 0.15:
            continue  # drop
        if r < 0.3:
            out.append(rng.choice(WORDS))  # replace
        else:
            out.append(w)
        if rng.random() < 0.05:
            out.append(rng.choice(WORDS))  # insert
    if len(out) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def _pairs(n: int = 600, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    refs = [_sentence(rng) for _ in range(n)]
    hyps = [_perturb(rng, r) for r in refs]
    # Edge cases: empty hypothesis / reference / both, one word, no matching n-gram at all.
    edge = [
        ("", "the cat sat"), ("the cat sat", ""), ("", ""), ("cat", "cat"), ("dog", "cat"),
        ("zebra quagga okapi", "the cat sat on the mat"), ("a a a a a a", "a cat"),
        ("on the mat", "the cat sat on the mat"), ("3.5 1,000", "3.5 1,000 well-known"),
    ]  # fmt: skip
    for h, r in edge:
        hyps.append(h)
        refs.append(r)
    return hyps, refs


def test_tokenize_13a_equals_sacrebleu():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()
    hyps, refs = _pairs(200)
    for line in hyps + refs + ["a-\nb", "x <skipped> y", "&quot;hi&quot; 3-4 1.5, a.b"]:
        assert tokenize_13a(line) == tok(line.rstrip()).split(), line


def test_corpus_bleu_equals_sacrebleu_on_600_pairs_with_edge_cases():
    hyps, refs = _pairs()
    assert len(hyps) >= 500
    ours = corpus_bleu(hyps, [refs])
    theirs = sacrebleu.corpus_bleu(hyps, [refs])
    assert abs(ours.score - theirs.score) < 1e-6, (ours.score, theirs.score)
    assert ours.sys_len == theirs.sys_len and ours.ref_len == theirs.ref_len
    assert ours.matches == list(theirs.counts) and ours.totals == list(theirs.totals)


@pytest.mark.parametrize("seed", range(20))
def test_corpus_bleu_on_small_corpora_and_two_references(seed):
    """Small corpora hit the smoothing and brevity branches; two reference streams too."""
    rng = random.Random(seed)
    n = rng.randint(1, 6)
    refs = [_sentence(rng, 0, 6) for _ in range(n)]
    refs2 = [_perturb(rng, r) for r in refs]
    hyps = [_perturb(rng, r) for r in refs]
    for streams in ([refs], [refs, refs2]):
        ours = corpus_bleu(hyps, streams).score
        theirs = sacrebleu.corpus_bleu(hyps, streams).score
        assert abs(ours - theirs) < 1e-6, (hyps, streams, ours, theirs)


def test_corpus_bleu_edge_values():
    assert math.isclose(
        corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]).score, 100.0
    )
    assert corpus_bleu(["zebra"], [["the cat"]]).score == 0.0
    assert corpus_bleu([""], [[""]]).score == 0.0


def test_corpus_bleu_bad_input():
    with pytest.raises(ValueError, match="reference streams"):
        corpus_bleu(["a"], ["a"])  # a list of strings, not of streams
    with pytest.raises(ValueError, match="1 segments, hypotheses 2"):
        corpus_bleu(["a", "b"], [["a"]])


def test_rouge_equals_rouge_score_within_1e_9():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    hyps, refs = _pairs(500, seed=1)
    worst = 0.0
    for h, r in zip(hyps, refs, strict=True):
        theirs = scorer.score(r, h)
        ours = rouge(r, h)
        for key in ("rouge1", "rouge2", "rougeL"):
            for field in ("precision", "recall", "fmeasure"):
                worst = max(worst, abs(getattr(ours[key], field) - getattr(theirs[key], field)))
    assert worst < 1e-9, worst


def test_lcs_length_by_hand():
    assert lcs_length("ABCBDAB", "BDCABA") == 4  # CLRS's example: BCBA
    assert lcs_length([], ["a"]) == 0


# Perplexity ----------------------------------------------------------------------------------


def test_windows_score_every_target_once():
    for n, context, stride in [(10, 4, 1), (10, 4, 3), (100, 16, 5), (5, 8, 3), (17, 5, 4)]:
        scored = []
        for begin, end, first in window_starts(n, context, stride):
            assert end - begin <= context and begin < first <= end
            scored += range(first, end)
        assert scored == list(range(1, n)), (n, context, stride)
    with pytest.raises(ValueError, match="stride=4"):
        window_starts(10, 4, 4)


def test_sliding_nll_of_a_bigram_model_equals_the_formula():
    """A model whose logits depend on the previous token only: any stride gives the exact NLL."""
    torch.manual_seed(0)
    table = torch.randn(7, 7)  # logits of the next token given the current one
    ids = torch.randint(0, 7, (50,))
    by_hand = -sum(F.log_softmax(table[ids[t - 1]], -1)[ids[t]].item() for t in range(1, 50)) / 49
    for stride in (1, 3, 7):
        nll, n = sliding_window_nll(lambda x: table[x], ids, context=8, stride=stride)
        assert n == 49 and math.isclose(nll, by_hand, rel_tol=1e-6)


def test_sliding_nll_matches_a_per_token_computation_with_a_gpt():
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=11, context_length=8, d_model=16, n_layers=1, n_heads=2)
    ).eval()
    ids = torch.randint(0, 11, (30,))

    def logits(x):
        return model(x)[0]

    with torch.no_grad():
        # One window holding everything = cross-entropy of the whole sequence.
        full = F.cross_entropy(model(ids[:8][None])[0][0, :-1], ids[1:8]).item()
        assert math.isclose(sliding_window_nll(logits, ids[:8], 8)[0], full, rel_tol=1e-6)
        # Stride 2: target t sees the tokens from the start of the window that scores it.
        expected = []
        for begin, end, first in window_starts(30, 8, 2):
            for t in range(first, end):
                history = ids[begin:t][None]
                expected.append(-F.log_softmax(model(history)[0][0, -1], -1)[ids[t]].item())
        nll, n = sliding_window_nll(logits, ids, 8, stride=2)
    assert n == 29 and math.isclose(nll, sum(expected) / len(expected), rel_tol=1e-5)
