"""Canary exposure (Carlini et al., 2019) against brute force: every candidate scored by a plain
forward pass of the model, ranks counted by sorting, and the exposure formula by hand."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.memorisation import (
    candidate_log_perplexities,
    estimated_exposure,
    exposure,
    exposures,
    insert_canary,
    rank_of,
    secret_log_perplexities,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=14, context_length=16, d_model=16, n_layers=2, n_heads=2))


DIGITS = list(range(10))  # token ids 0..9 are the digits '0'..'9'
PREFIX = [12, 11, 13, 10]


def brute_force_px(model, n_digits):
    """Px of every secret by one model(...) call per candidate, with torch's cross-entropy."""
    out = []
    for r in range(10**n_digits):
        secret = [int(c) for c in f"{r:0{n_digits}d}"]
        ids = torch.tensor([PREFIX + secret])
        with torch.no_grad():
            logits, _ = model(ids[:, :-1])
        nll = F.cross_entropy(logits[0, len(PREFIX) - 1 :].double(), ids[0, len(PREFIX) :],
                              reduction="sum")  # fmt: skip
        out.append(nll.item() / math.log(2))
    return np.array(out)


@pytest.mark.parametrize("n_digits", [1, 2, 3])
def test_all_secrets_in_one_pass_equal_brute_force(model, n_digits):
    fast = secret_log_perplexities(model, PREFIX, DIGITS, n_digits, batch_size=7).numpy()
    np.testing.assert_allclose(fast, brute_force_px(model, n_digits), rtol=1e-5, atol=1e-5)


def test_candidate_scores_equal_brute_force(model):
    candidates = [[int(c) for c in f"{r:02d}"] for r in (0, 7, 42, 99)]
    ours = candidate_log_perplexities(model, PREFIX, candidates, batch_size=3).numpy()
    np.testing.assert_allclose(ours, brute_force_px(model, 2)[[0, 7, 42, 99]], rtol=1e-6)


def test_rank_and_exposure_by_sorting():
    rng = np.random.default_rng(0)
    px = rng.normal(size=1000)
    for index in (0, 17, 999):
        rank = int(np.where(np.argsort(px) == index)[0][0]) + 1  # 1-based position in the sort
        assert rank_of(px, index) == rank
        assert exposure(px, index) == pytest.approx(math.log2(1000) - math.log2(rank))
    best = int(np.argmin(px))
    assert exposure(px, best) == pytest.approx(math.log2(1000))  # ranked first: all bits
    indices = [0, 17, 999, 17]
    np.testing.assert_allclose(exposures(px, indices), [exposure(px, i) for i in indices])
    ties = np.array([2.0, 1.0, 2.0, 3.0])  # ties share the better rank: 1 + strictly lower
    assert [rank_of(ties, i) for i in range(4)] == [2, 1, 2, 4]


def test_sampled_exposure_approaches_the_exact_one():
    rng = np.random.default_rng(1)
    px = rng.normal(size=100_000)
    index = int(np.argsort(px)[99])  # rank 100: exposure log2(1000) ~ 9.97 bits
    sample = px[rng.integers(0, len(px), 20_000)]
    exact = exposure(px, index)
    assert estimated_exposure(px[index], sample, len(px)) == pytest.approx(exact, abs=0.5)


def test_uniform_ranks_have_mean_exposure_one_over_ln2():
    # Under no memorisation the rank is uniform on 1..|R|, and E[exposure] -> 1 / ln 2.
    size = 10_000
    mean = np.mean([math.log2(size) - math.log2(r) for r in range(1, size + 1)])
    assert mean == pytest.approx(1 / math.log(2), abs=0.01)


def test_insert_canary_adds_k_lines():
    text = "\n".join(f"line {i}" for i in range(50))
    for k in (0, 1, 4, 16):
        out = insert_canary(text, "the secret number is 374925", k, seed=0)
        assert out.split("\n").count("the secret number is 374925") == k
        assert [x for x in out.split("\n") if x.startswith("line")] == text.split("\n")
    with pytest.raises(ValueError, match="k=-1"):
        insert_canary(text, "x", -1)


def test_errors_name_the_values(model):
    with pytest.raises(ValueError, match="10 ids"):
        secret_log_perplexities(model, PREFIX, DIGITS[:9], 2)
    with pytest.raises(ValueError, match="context of 16"):
        secret_log_perplexities(model, PREFIX * 4, DIGITS, 3)
    with pytest.raises(ValueError, match="index=5"):
        rank_of(np.zeros(5), 5)
