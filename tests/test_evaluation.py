"""evaluation against references: scipy's bootstrap and permutation test, the ECE formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import optimize, stats

from llmbook_utils.evaluation import (
    bootstrap_ci,
    expected_calibration_error,
    fit_temperature,
    paired_bootstrap,
    permutation_test,
    reliability_bins,
)
from llmbook_utils.metrics import accuracy


def _accuracy(y, p):
    return float(np.mean(y == p))


def test_bootstrap_ci_of_accuracy_agrees_with_scipy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    p = np.where(rng.random(400) < 0.7, y, rng.integers(0, 3, 400))
    ours = bootstrap_ci(_accuracy, y, p, n_resamples=4000, seed=0)
    theirs = stats.bootstrap(
        ((y == p).astype(float),), np.mean, n_resamples=4000, method="percentile",
        random_state=np.random.default_rng(1),
    ).confidence_interval  # fmt: skip
    assert ours.estimate == pytest.approx(accuracy(y, p))
    assert ours.low == pytest.approx(theirs.low, abs=0.01)
    assert ours.high == pytest.approx(theirs.high, abs=0.01)


def test_permutation_test_agrees_with_scipys_exact_test():
    """n = 12 examples: scipy enumerates all 2^12 swaps exactly."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 12)
    a = np.where(rng.random(12) < 0.9, y, 1 - y)
    b = np.where(rng.random(12) < 0.5, y, 1 - y)
    ours = permutation_test(_accuracy, y, a, b, n_permutations=20_000, seed=0)
    exact = stats.permutation_test(
        ((a == y).astype(float), (b == y).astype(float)),
        lambda x1, x2: np.mean(x1) - np.mean(x2), permutation_type="samples",
        alternative="two-sided", n_resamples=np.inf,
    ).pvalue  # fmt: skip
    assert ours == pytest.approx(exact, abs=0.015)


def test_paired_bootstrap_sign_and_interval():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    good = np.where(rng.random(500) < 0.8, y, rng.integers(0, 3, 500))
    bad = np.where(rng.random(500) < 0.5, y, rng.integers(0, 3, 500))
    res = paired_bootstrap(_accuracy, y, good, bad, n_resamples=500)
    assert res.difference == pytest.approx(_accuracy(y, good) - _accuracy(y, bad))
    assert 0 < res.low < res.difference < res.high and res.p_value < 0.01
    same = paired_bootstrap(_accuracy, y, good, good, n_resamples=200)
    assert same.difference == 0 and same.p_value == 1.0


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 1])
    # 2 bins: (0, .5] is empty; (.5, 1] holds all 4, confidence .75, accuracy 2/4.
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.25)
    # 10 bins: .9 -> right (gap .1), .8 -> wrong (.8), .7 -> right (.3), .6 -> wrong (.6).
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(1.8 / 4)
    bins = reliability_bins(probs, labels, n_bins=10)
    assert bins.count.sum() == 4 and bins.count[8] == 1 and np.isnan(bins.accuracy[0])


def test_fit_temperature_minimises_the_nll():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (300,))
    logits = 4 * F.one_hot(labels, 3).float() + 3 * torch.randn(300, 3)  # over-confident
    t = fit_temperature(logits.numpy(), labels.numpy())
    best = optimize.minimize_scalar(
        lambda s: F.cross_entropy(logits.double() / s, labels).item(), bounds=(0.05, 20),
        method="bounded", options={"xatol": 1e-8},
    ).x  # fmt: skip
    assert t == pytest.approx(best, rel=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_ci(_accuracy, [0, 1], [0])
    with pytest.raises(ValueError, match="alpha=1.5"):
        bootstrap_ci(_accuracy, [0, 1], [0, 1], alpha=1.5)
    with pytest.raises(ValueError, match=r"probs \(N, K\)"):
        expected_calibration_error(np.ones(3), np.zeros(3))
