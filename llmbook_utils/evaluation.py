"""Evaluation practice: bootstrap intervals, paired significance tests, calibration.

- ``bootstrap_ci``: a percentile bootstrap confidence interval of any metric of (references,
  predictions) (Efron and Tibshirani, 1993): resample the test examples with replacement,
  recompute the metric, take the quantiles.
- ``paired_bootstrap`` and ``permutation_test``: is model A better than model B *on the same
  test set*? Both resample examples jointly for the two models, so the per-example correlation
  between them (they get the same easy and hard examples) is kept (Koehn, 2004; Dror et al.,
  2018, https://aclanthology.org/P18-1128).
- ``reliability_bins``, ``expected_calibration_error`` and ``fit_temperature``: calibration of a
  classifier's confidences and temperature scaling (Guo et al., 2017,
  https://arxiv.org/abs/1706.04599).

Shape legend: N examples, K classes, R resamples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from llmbook_utils.metrics import as_numpy

Metric = Callable[[np.ndarray, np.ndarray], float]


def _check_pairs(y_true, *predictions) -> tuple[np.ndarray, ...]:
    arrays = [as_numpy(y_true), *(as_numpy(p) for p in predictions)]
    if any(a.ndim != 1 for a in arrays):
        raise ValueError(f"inputs must be 1-D, got shapes {[a.shape for a in arrays]}")
    if len({len(a) for a in arrays}) != 1 or len(arrays[0]) == 0:
        raise ValueError(
            f"inputs must be non-empty and of equal length: {[len(a) for a in arrays]}"
        )
    return tuple(arrays)


def _check_resamples(n: int, alpha: float | None = None) -> None:
    if n < 1:
        raise ValueError(f"n_resamples={n} must be >= 1")
    if alpha is not None and not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")


def _resampled_rows(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(R, N) indices: R bootstrap resamples (with replacement) of N examples."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _percentiles(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """The alpha/2 and 1 - alpha/2 quantiles: a (1 - alpha) percentile interval."""
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its (1 - alpha) bootstrap interval."""

    estimate: float
    low: float
    high: float


def bootstrap_ci(
    metric: Metric,
    y_true,
    y_pred,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``metric(y_true, y_pred)``.

    Args:
        metric: e.g. ``llmbook_utils.metrics.f1_score``.
        y_true: references (N,).
        y_pred: predictions (N,).
        n_resamples: R, bootstrap resamples of the N examples.
        alpha: 0.05 gives a 95% interval (the 2.5% and 97.5% quantiles).
        seed: seeds the resampling.
    """
    _check_resamples(n_resamples, alpha)
    y_true, y_pred = _check_pairs(y_true, y_pred)
    rows = _resampled_rows(len(y_true), n_resamples, seed)  # (R, N)
    scores = np.array([metric(y_true[r], y_pred[r]) for r in rows])  # (R,)
    return Interval(float(metric(y_true, y_pred)), *_percentiles(scores, alpha))


@dataclass(frozen=True)
class PairedResult:
    """Model A minus model B on one test set.

    Attributes:
        difference: metric(A) - metric(B) on the full test set.
        low, high: the (1 - alpha) percentile bootstrap interval of the difference.
        p_value: one-sided, for "A is not better than B": the share of resamples in which the
            difference, recentred on zero, is at least the observed one (Berg-Kirkpatrick et al.,
            2012: resamples of the difference are centred on the observed difference, not 0).
    """

    difference: float
    low: float
    high: float
    p_value: float


def paired_bootstrap(
    metric: Metric,
    y_true,
    pred_a,
    pred_b,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedResult:
    """Paired bootstrap test of metric(A) - metric(B): both models see the same resamples."""
    _check_resamples(n_resamples, alpha)
    y_true, pred_a, pred_b = _check_pairs(y_true, pred_a, pred_b)
    observed = metric(y_true, pred_a) - metric(y_true, pred_b)
    rows = _resampled_rows(len(y_true), n_resamples, seed)  # (R, N)
    diffs = np.array([metric(y_true[r], pred_a[r]) - metric(y_true[r], pred_b[r]) for r in rows])
    p_value = (np.sum(diffs - observed >= observed) + 1) / (n_resamples + 1)
    return PairedResult(float(observed), *_percentiles(diffs, alpha), float(p_value))


def permutation_test(
    metric: Metric,
    y_true,
    pred_a,
    pred_b,
    n_permutations: int = 1000,
    seed: int = 0,
) -> float:
    """Two-sided paired permutation (approximate randomisation) test; returns the p-value.

    Under the null hypothesis the two models are exchangeable, so swapping A's and B's
    prediction on any example leaves the distribution of the difference unchanged. Each
    permutation swaps every example with probability 1/2; the p-value is the share of
    permutations with ``|difference| >= |observed|`` (with the +1 correction, so never 0).
    """
    _check_resamples(n_permutations)
    y_true, pred_a, pred_b = _check_pairs(y_true, pred_a, pred_b)
    observed = abs(metric(y_true, pred_a) - metric(y_true, pred_b))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_permutations):
        swap = rng.random(len(y_true)) < 0.5  # (N,)
        a, b = np.where(swap, pred_b, pred_a), np.where(swap, pred_a, pred_b)
        hits += abs(metric(y_true, a) - metric(y_true, b)) >= observed - 1e-12
    return float((hits + 1) / (n_permutations + 1))


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityBins:
    """Examples grouped by confidence into equal-width bins of [0, 1].

    Attributes:
        edges: (n_bins + 1,) bin edges; bin b holds confidences in (edges[b], edges[b + 1]]
            (the first bin also holds 0).
        confidence: (n_bins,) mean confidence of each bin (NaN when empty).
        accuracy: (n_bins,) accuracy of each bin (NaN when empty).
        count: (n_bins,) examples per bin.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray


def _scores_and_labels(scores, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` (N, K) as float64 and ``labels`` (N,) as arrays, or a ValueError naming both."""
    scores, labels = as_numpy(scores).astype(np.float64), as_numpy(labels)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(
            f"{name} (N, K) and labels (N,) expected, got {scores.shape}, {labels.shape}"
        )
    return scores, labels


def reliability_bins(probs, labels, n_bins: int = 15) -> ReliabilityBins:
    """Bin the top-class confidences and measure the accuracy in each bin.

    Args:
        probs: (N, K) predicted class probabilities (rows sum to 1).
        labels: (N,) true classes.
        n_bins: equal-width bins of the confidence.
    """
    probs, labels = _scores_and_labels(probs, labels, "probs")
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins} must be >= 1")
    confidence = probs.max(axis=1)  # (N,)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)  # (N,)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)  # (N,)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, weights=confidence, minlength=n_bins) / count
        acc = np.bincount(which, weights=correct, minlength=n_bins) / count
    return ReliabilityBins(edges, conf, acc, count)


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """ECE = sum_b (n_b / N) |accuracy_b - confidence_b| over equal-width confidence bins."""
    bins = reliability_bins(probs, labels, n_bins)
    used = bins.count > 0
    gaps = np.abs(bins.accuracy[used] - bins.confidence[used])
    return float(np.sum(bins.count[used] / bins.count.sum() * gaps))


def fit_temperature(logits, labels, max_iter: int = 200) -> float:
    """The temperature T > 0 that minimises the NLL of ``softmax(logits / T)`` (Guo et al.).

    Fit it on held-out data (validation), never on the test set. One scalar cannot change the
    argmax, so accuracy and F1 stay exactly the same; only the confidences move.

    Args:
        logits: (N, K) uncalibrated logits.
        labels: (N,) true classes.
        max_iter: L-BFGS iterations.
    """
    scores, classes = _scores_and_labels(logits, labels, "logits")
    logits = torch.from_numpy(scores)
    labels = torch.as_tensor(classes, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) > 0
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())
