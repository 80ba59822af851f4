"""Metrics for generated text, written out: corpus BLEU, ROUGE-1/2/L and sliding-window perplexity.

- ``corpus_bleu``: BLEU (Papineni et al., 2002, https://aclanthology.org/P02-1040) with the
  conventions of sacrebleu (Post, 2018, https://aclanthology.org/W18-6319): the ``13a``
  tokenizer of WMT's ``mteval-v13a.pl``, clipped n-gram counts summed over the corpus for
  n = 1..4, the closest reference length for the brevity penalty, and the ``exp`` smoothing of
  n-gram orders without any match. It equals ``sacrebleu.corpus_bleu`` (tests check it).
- ``rouge_n`` / ``rouge_l`` / ``rouge``: ROUGE (Lin, 2004, https://aclanthology.org/W04-1013)
  with the tokenization of Google's ``rouge_score`` (lower case, runs of characters other than
  a-z and 0-9 split words), precision, recall and F1 per pair.
- ``sliding_window_nll``: the mean negative log-likelihood of a token sequence longer than a
  model's context, scored in windows of ``context`` tokens that advance by ``stride``; every
  token is scored exactly once, with at least ``context - stride`` tokens of history once the
  first window is past.

Shape legend: B batch, T time (tokens), V vocabulary.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_ORDER = 4  # BLEU-4

# The 13a tokenizer of mteval-v13a.pl as sacrebleu writes it (sacrebleu/tokenizers).
_TOKENIZE_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation and symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # a period or comma after a non-digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... or before one
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit
]


def tokenize_13a(line: str) -> list[str]:
    """Split a line into tokens as ``mteval-v13a.pl`` does (sacrebleu's default ``13a``)."""
    line = line.rstrip()
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _TOKENIZE_13A:
        line = pattern.sub(replacement, line)
    return line.split()


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """How often each n-gram (a tuple of n tokens) occurs in ``tokens``."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@dataclass(frozen=True)
class BLEUResult:
    """Corpus BLEU and its sufficient statistics.

    Attributes:
        score: BLEU on sacrebleu's 0-100 scale.
        precisions: the (smoothed) modified n-gram precisions p_n, in percent, n = 1..4.
        brevity_penalty: BP = exp(1 - r / c) when c < r, else 1.
        sys_len: c, tokens in all hypotheses.
        ref_len: r, the summed closest reference lengths.
        matches: clipped n-gram matches per order, summed over the corpus.
        totals: hypothesis n-grams per order, summed over the corpus.
    """

    score: float
    precisions: list[float]
    brevity_penalty: float
    sys_len: int
    ref_len: int
    matches: list[int]
    totals: list[int]


def _closest_length(hyp_len: int, ref_lens: list[int]) -> int:
    """The reference length closest to the hypothesis length; ties go to the shorter one."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> BLEUResult:
    """Corpus-level BLEU-4, equal to ``sacrebleu.corpus_bleu(hypotheses, references).score``.

    BLEU = BP * exp(mean_n log p_n), with p_n = sum of clipped n-gram matches / sum of
    hypothesis n-grams over the whole corpus (not a mean of sentence scores). An order with
    hypothesis n-grams but no match gets p_n = 100 / (2^k * total_n), k counting such orders
    (the ``exp`` smoothing); no match at any order gives 0.

    Args:
        hypotheses: the system outputs, one string per segment.
        references: reference streams as sacrebleu takes them: ``references[k][i]`` is the
            k-th reference of segment i (one stream for a single reference per segment).

    Returns:
        A ``BLEUResult``.
    """
    if isinstance(references, str) or len(references) == 0 or isinstance(references[0], str):
        raise ValueError(
            "references must be a non-empty list of reference streams (references[k][i] is "
            f"the k-th reference of segment i; [refs] for one each), got {references!r:.80}"
        )
    for k, stream in enumerate(references):
        if len(stream) != len(hypotheses):
            raise ValueError(
                f"reference stream {k} has {len(stream)} segments, hypotheses {len(hypotheses)}"
            )
    matches, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    sys_len = ref_len = 0
    for i, hypothesis in enumerate(hypotheses):
        hyp = tokenize_13a(hypothesis)
        refs = [tokenize_13a(stream[i]) for stream in references]
        sys_len += len(hyp)
        ref_len += _closest_length(len(hyp), [len(r) for r in refs])
        for n in range(1, MAX_ORDER + 1):
            hyp_ngrams = ngram_counts(hyp, n)
            max_ref = Counter()  # the most times each n-gram occurs in any one reference
            for ref in refs:
                max_ref |= ngram_counts(ref, n)
            matches[n - 1] += sum(min(c, max_ref[g]) for g, c in hyp_ngrams.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)

    bp = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len else 0.0)
    precisions = [0.0] * MAX_ORDER
    if not any(matches):
        return BLEUResult(0.0, precisions, bp, sys_len, ref_len, matches, totals)
    smooth = 1.0
    for n in range(MAX_ORDER):
        if totals[n] == 0:  # no hypothesis n-grams at this order (very short segments)
            break
        if matches[n] == 0:
            smooth *= 2
            precisions[n] = 100.0 / (smooth * totals[n])
        else:
            precisions[n] = 100.0 * matches[n] / totals[n]
    # An order without n-grams keeps p_n = 0, whose log sacrebleu floors at -9999999999.
    log_mean = sum(math.log(p) if p > 0 else -9999999999 for p in precisions) / MAX_ORDER
    return BLEUResult(bp * math.exp(log_mean), precisions, bp, sys_len, ref_len, matches, totals)


# ---------------------------------------------------------------------------------------------
# ROUGE
# ---------------------------------------------------------------------------------------------

_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def tokenize_rouge(text: str) -> list[str]:
    """``rouge_score``'s tokenization without stemming: lower case, split on non-[a-z0-9]."""
    return [t for t in _NON_ALPHANUMERIC.sub(" ", text.lower()).split() if t]


@dataclass(frozen=True)
class PRF:
    """Precision, recall and their harmonic mean F1 (``rouge_score`` calls it fmeasure)."""

    precision: float
    recall: float
    fmeasure: float


def _prf(overlap: int, n_prediction: int, n_reference: int) -> PRF:
    precision = overlap / max(n_prediction, 1)
    recall = overlap / max(n_reference, 1)
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return PRF(precision, recall, f)


def rouge_n(reference: str, prediction: str, n: int) -> PRF:
    """ROUGE-N: overlap of n-gram counts; recall divides by the reference's n-grams.

    Args:
        reference: the target text.
        prediction: the generated text.
        n: the n-gram order (1 for ROUGE-1, 2 for ROUGE-2).
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    ref, pred = (
        ngram_counts(tokenize_rouge(reference), n),
        ngram_counts(tokenize_rouge(prediction), n),
    )
    overlap = sum(min(c, pred[g]) for g, c in ref.items())
    return _prf(overlap, sum(pred.values()), sum(ref.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming in O(len(a) len(b))."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(reference: str, prediction: str) -> PRF:
    """ROUGE-L: precision and recall of the longest common subsequence (sentence level)."""
    ref, pred = tokenize_rouge(reference), tokenize_rouge(prediction)
    if not ref or not pred:
        return PRF(0.0, 0.0, 0.0)
    return _prf(lcs_length(ref, pred), len(pred), len(ref))


def rouge(reference: str, prediction: str) -> dict[str, PRF]:
    """``{"rouge1", "rouge2", "rougeL"}`` as ``rouge_score.RougeScorer(...).score`` returns."""
    return {
        "rouge1": rouge_n(reference, prediction, 1),
        "rouge2": rouge_n(reference, prediction, 2),
        "rougeL": rouge_l(reference, prediction),
    }


# ---------------------------------------------------------------------------------------------
# Perplexity of long texts
# ---------------------------------------------------------------------------------------------


def window_starts(n_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """The windows of a sliding-window evaluation: ``(begin, end, first_scored)`` per window.

    Window ``[begin, end)`` is fed to the model; the targets at positions
    ``first_scored .. end - 1`` are scored (position 0 has no history and is never a target).
    Consecutive windows start ``stride`` tokens apart, and each scores only the targets the
    previous one did not, so every target 1..n-1 is scored once.
    """
    if context < 2:
        raise ValueError(f"context={context} must be >= 2")
    if not 1 <= stride <= context - 1:
        raise ValueError(f"stride={stride} must be in [1, context - 1 = {context - 1}]")
    if n_tokens < 2:
        raise ValueError(f"need at least 2 tokens, got {n_tokens}")
    windows, scored_until, begin = [], 1, 0
    while scored_until < n_tokens:
        end = min(begin + context, n_tokens)
        windows.append((begin, end, scored_until))
        scored_until = end
        begin += stride
        if end == n_tokens:
            break
    return windows


@torch.no_grad()
def sliding_window_nll(
    logits_fn: Callable[[Tensor], Tensor],
    ids: Tensor,
    context: int,
    stride: int | None = None,
) -> tuple[float, int]:
    """Mean negative log-likelihood (nats per token) of a long sequence, window by window.

    A model with a context of ``context`` tokens cannot read a long text at once. Cutting the
    text into disjoint blocks (``stride = context - 1``) scores the first tokens of each block
    with almost no history; a smaller stride gives each scored token at least
    ``context - stride`` tokens of history, at ``context / stride`` times the compute.

    Args:
        logits_fn: maps ids (1, T) to logits (1, T, V), e.g. ``lambda x: model(x)[0]``.
        ids: the token ids, (N,).
        context: the most tokens the model reads at once.
        stride: how far consecutive windows move; default ``context - 1`` (disjoint targets).

    Returns:
        ``(mean_nll, n_scored)``: the perplexity is ``exp(mean_nll)``; ``n_scored = N - 1``.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D (N,), got shape {tuple(ids.shape)}")
    stride = context - 1 if stride is None else stride
    total, count = 0.0, 0
    for begin, end, first in window_starts(len(ids), context, stride):
        window = ids[begin:end].unsqueeze(0)  # (1, T)
        # Position p of the window predicts token begin + p + 1; only the S scored rows count.
        rows = logits_fn(window)[0, first - begin - 1 : end - begin - 1].float()  # (S, V)
        targets = ids[first:end]  # (S,)
        total += F.cross_entropy(rows, targets.to(rows.device), reduction="sum").item()
        count += len(targets)
    return total / count, count
