"""The CRF against brute-force enumeration of all K^T tag sequences, and autograd's gradcheck."""

from __future__ import annotations

import itertools

import pytest
import torch

from llmbook_utils.crf import (
    LinearChainCRF,
    bio_allowed,
    log_partition,
    sequence_score,
    viterbi_decode,
)


def _random_crf(batch=3, length=4, tags=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, length, tags, generator=g, dtype=dtype)
    transitions = torch.randn(tags, tags, generator=g, dtype=dtype)
    start = torch.randn(tags, generator=g, dtype=dtype)
    end = torch.randn(tags, generator=g, dtype=dtype)
    return emissions, transitions, start, end


def _score_by_hand(e, y, transitions, start, end):
    """s(y) of one sequence, written out as the formula of the module docstring."""
    s = start[y[0]] + e[0, y[0]]
    for t in range(1, len(y)):
        s = s + transitions[y[t - 1], y[t]] + e[t, y[t]]
    return s + end[y[-1]]


def _brute_force(e, transitions, start, end):
    """(log Z, best path, best score) of one sequence (T, K) by enumerating K^T paths."""
    length, tags = e.shape
    paths = list(itertools.product(range(tags), repeat=length))
    scores = torch.stack([_score_by_hand(e, y, transitions, start, end) for y in paths])
    best = int(scores.argmax())
    return torch.logsumexp(scores, 0), list(paths[best]), scores[best]


def test_score_matches_the_formula():
    emissions, transitions, start, end = _random_crf()
    tags = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0], [1, 0, 1, 2]])
    got = sequence_score(emissions, tags, transitions, start, end)
    for b in range(3):
        want = _score_by_hand(emissions[b], tags[b].tolist(), transitions, start, end)
        torch.testing.assert_close(got[b], want)


@pytest.mark.parametrize("length,tags", [(1, 3), (3, 2), (4, 3), (5, 4)])
def test_log_partition_and_viterbi_equal_brute_force(length, tags):
    emissions, transitions, start, end = _random_crf(length=length, tags=tags, seed=length)
    log_z = log_partition(emissions, transitions, start, end)
    paths, scores = viterbi_decode(emissions, transitions, start, end)
    for b in range(emissions.shape[0]):
        want_z, want_path, want_score = _brute_force(emissions[b], transitions, start, end)
        torch.testing.assert_close(log_z[b], want_z)
        assert paths[b] == want_path
        torch.testing.assert_close(scores[b], want_score)


def test_padding_equals_the_unpadded_sequence():
    emissions, transitions, start, end = _random_crf(batch=2, length=5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    log_z = log_partition(emissions, transitions, start, end, mask)
    paths, _ = viterbi_decode(emissions, transitions, start, end, mask)
    want_z, want_path, _ = _brute_force(emissions[1, :2], transitions, start, end)
    torch.testing.assert_close(log_z[1], want_z)
    assert paths[1] == want_path and len(paths[0]) == 5


def test_probabilities_sum_to_one():
    emissions, transitions, start, end = _random_crf(batch=1, length=3, tags=3)
    crf = LinearChainCRF(3).double()
    with torch.no_grad():
        crf.transitions.copy_(transitions), crf.start.copy_(start), crf.end.copy_(end)
    total = 0.0
    for y in itertools.product(range(3), repeat=3):
        nll = crf.nll(emissions, torch.tensor([y]))
        total += float(torch.exp(-nll.detach()))
    assert total == pytest.approx(1.0, abs=1e-10)


def test_gradcheck_of_the_log_partition():
    emissions, transitions, start, end = _random_crf(batch=2, length=4, tags=3)
    inputs = tuple(x.clone().requires_grad_(True) for x in (emissions, transitions, start, end))
    assert torch.autograd.gradcheck(log_partition, inputs)


def test_gradient_of_log_z_is_the_marginal_probability():
    """d log Z / d E[t, k] = p(y_t = k): checked against the brute-force marginals."""
    emissions, transitions, start, end = _random_crf(batch=1, length=3, tags=3)
    emissions.requires_grad_(True)
    log_partition(emissions, transitions, start, end).sum().backward()
    paths = list(itertools.product(range(3), repeat=3))
    scores = torch.stack([_score_by_hand(emissions[0], y, transitions, start, end) for y in paths])
    probs = torch.softmax(scores.detach(), 0)
    marginals = torch.zeros(3, 3, dtype=torch.float64)
    for p, y in zip(probs, paths, strict=True):
        for t, k in enumerate(y):
            marginals[t, k] += p
    torch.testing.assert_close(emissions.grad[0], marginals)


def test_bio_constraints_forbid_i_after_o():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, allowed_start = bio_allowed(labels)
    assert not allowed[0, 2] and allowed[1, 2] and allowed[2, 2] and not allowed[3, 2]
    assert not allowed_start[2] and allowed_start[1]
    crf = LinearChainCRF(5, allowed, allowed_start)
    emissions = torch.zeros(1, 3, 5)
    emissions[0, :, 2] = 5.0  # the emissions prefer I-PER everywhere
    path = crf.decode(emissions)[0]
    assert path[0] != 2  # cannot start with I-PER
    assert all(not (a == 0 and b == 2) for a, b in itertools.pairwise(path))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="expected"):
        LinearChainCRF(3).log_partition(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="mask"):
        LinearChainCRF(3).log_partition(torch.zeros(2, 4, 3), torch.zeros(2, 4))
