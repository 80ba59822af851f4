"""Measuring bias: the Word Embedding Association Test and a counterfactual direction (chapter 15).

- ``weat_effect_size`` and ``weat_p_value``: the WEAT of Caliskan, Bryson and Narayanan,
  "Semantics derived automatically from language corpora contain human-like biases", Science
  356 (2017), https://arxiv.org/abs/1608.07187. For target word sets X, Y and attribute sets
  A, B of vectors, the association of a word w is

      s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b),

  the effect size is the standardised difference of the targets' mean associations,

      d = (mean_{x in X} s(x, A, B) - mean_{y in Y} s(y, A, B)) / std_{w in X u Y} s(w, A, B)

  (sample standard deviation), and the one-sided permutation p-value is the share of equal-size
  re-partitions (X_i, Y_i) of X u Y whose statistic sum_x s(x) - sum_y s(y) is at least the
  observed one.
- ``WEAT_TESTS`` and ``load_weat_tests``: the paper's ten tests (Table 1), with the word sets
  of ``WEAT.json`` in the PyPI wheel ``wefe==1.0.1`` (read by
  ``vectors.load_weat_word_sets``, never imported) and the effect sizes the paper published for
  GloVe vectors trained on 840 billion tokens of Common Crawl.
- ``run_weat``: one test on a ``vectors.WordVectors``, lower-casing and dropping words the
  vocabulary lacks, as the paper does.
- ``bias_direction`` and ``project_out``: the principal direction of the differences between
  counterfactual pairs of vectors, and its removal (the "neutralise" step of Bolukbasi et al.,
  "Man is to Computer Programmer as Woman is to Homemaker?", NeurIPS 2016,
  https://arxiv.org/abs/1607.06520).

Shapes: n words, D dimensions.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass

import numpy as np

from llmbook_utils.vectors import WordVectors, load_weat_word_sets


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"expected a non-empty (n, D) array, got shape {vectors.shape}")
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def association(words: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s(w, A, B) for every row w of ``words``: (n, D), (nA, D), (nB, D) -> (n,)."""
    w = _unit(words)
    return (w @ _unit(a).T).mean(axis=1) - (w @ _unit(b).T).mean(axis=1)


def weat_effect_size(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Caliskan et al.'s effect size d of targets X, Y (rows) against attributes A, B (rows).

    Args:
        x, y: (nX, D) and (nY, D) target vectors, each with at least one row.
        a, b: (nA, D) and (nB, D) attribute vectors.

    Returns:
        d in [-2, 2]; positive when X is closer to A (and Y to B) than the other way round.
    """
    s_x, s_y = association(x, a, b), association(y, a, b)
    spread = np.std(np.concatenate([s_x, s_y]), ddof=1)
    return float((s_x.mean() - s_y.mean()) / spread)


def weat_p_value(
    x: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> float:
    """One-sided permutation p-value of the WEAT statistic sum_x s(x) - sum_y s(y).

    Every equal-size split of X u Y is enumerated when there are at most ``n_permutations`` of
    them (the exact test of the paper); otherwise ``n_permutations`` random splits are drawn and
    the observed split is counted among them, so p >= 1 / (n_permutations + 1).

    Args:
        x, y: target vectors (nX, D), (nY, D).
        a, b: attribute vectors.
        n_permutations: the most splits to enumerate, and the number drawn beyond that.
        seed: for the random splits.
    """
    s = np.concatenate([association(x, a, b), association(y, a, b)])  # (nX + nY,)
    n, n_x = len(s), len(x)
    total = s.sum()
    observed = 2 * s[:n_x].sum() - total  # sum_X s - sum_Y s = 2 sum_X s - sum_all s
    if math.comb(n, n_x) <= n_permutations:
        splits = np.array(list(itertools.combinations(range(n), n_x)))  # every X_i
        stats = 2 * s[splits].sum(axis=1) - total
        return float(np.mean(stats >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random((n_permutations, n)), axis=1)[:, :n_x]  # random X_i
    stats = 2 * s[picks].sum(axis=1) - total
    return float((np.sum(stats >= observed - 1e-12) + 1) / (n_permutations + 1))


@dataclass(frozen=True)
class WeatTest:
    """One WEAT of Caliskan et al. (2017), Table 1.

    Attributes:
        name: short description, "targets / attributes".
        x, y: the target word-set names in ``WEAT.json``.
        a, b: the attribute word-set names.
        published_d: the effect size the paper reports (GloVe, Common Crawl 840B tokens).
    """

    name: str
    x: str
    y: str
    a: str
    b: str
    published_d: float


WEAT_TESTS: tuple[WeatTest, ...] = (
    WeatTest("flowers vs insects / pleasant vs unpleasant", "flowers", "insects",
             "pleasant_5", "unpleasant_5a", 1.50),
    WeatTest("instruments vs weapons / pleasant vs unpleasant", "instruments", "weapons",
             "pleasant_5", "unpleasant_5a", 1.53),
    WeatTest("European vs African American names (IAT) / pleasant vs unpleasant",
             "european_american_names_5", "african_american_names_5",
             "pleasant_5", "unpleasant_5b", 1.41),
    WeatTest("European vs African American names (Bertrand) / pleasant vs unpleasant",
             "european_american_names_7", "african_american_names_7",
             "pleasant_5", "unpleasant_5b", 1.50),
    WeatTest("European vs African American names (Bertrand) / pleasant vs unpleasant (Nosek)",
             "european_american_names_7", "african_american_names_7",
             "pleasant_9", "unpleasant_9", 1.28),
    WeatTest("male vs female names / career vs family", "male_names", "female_names",
             "career", "family", 1.81),
    WeatTest("math vs arts / male vs female terms", "math", "arts",
             "male_terms", "female_terms", 1.06),
    WeatTest("science vs arts / male vs female terms", "science", "arts_2",
             "male_terms_2", "female_terms_2", 1.24),
    WeatTest("mental vs physical disease / temporary vs permanent", "mental_disease",
             "physical_disease", "temporary", "permanent", 1.38),
    WeatTest("young vs old people's names / pleasant vs unpleasant", "young_people_names",
             "old_people_names", "pleasant_9", "unpleasant_9", 1.21),
)  # fmt: skip


def load_weat_tests(
    cache_dir: str | os.PathLike | None = None,
) -> tuple[tuple[WeatTest, ...], dict[str, list[str]]]:
    """The ten tests and the word sets they name (``vectors.load_weat_word_sets``).

    Raises:
        RuntimeError: if ``WEAT.json`` is not cached and the package index is unreachable.
        ValueError: if the file lacks a set that a test names.
    """
    sets = load_weat_word_sets(cache_dir=cache_dir)
    needed = {name for t in WEAT_TESTS for name in (t.x, t.y, t.a, t.b)}
    missing = sorted(needed - set(sets))
    if missing:
        raise ValueError(f"WEAT.json lacks the word sets {missing}")
    return WEAT_TESTS, sets


@dataclass(frozen=True)
class WeatResult:
    """The outcome of one WEAT on one set of vectors."""

    test: WeatTest
    effect_size: float  # d
    p_value: float  # one-sided permutation p-value
    n_words: tuple[int, int, int, int]  # words of X, Y, A, B found in the vocabulary
    missing: tuple[str, ...]  # words dropped because the vocabulary lacks them


def run_weat(
    vectors: WordVectors,
    test: WeatTest,
    word_sets: dict[str, list[str]],
    n_permutations: int = 10_000,
    seed: int = 0,
) -> WeatResult:
    """Run one test: look the words up (lower-cased), drop the missing ones, compute d and p.

    When the two target sets lose different numbers of words, the larger one is cut to the
    size of the smaller (keeping its first words), as the permutation test needs equal sizes.
    """
    found: list[list[str]] = []
    missing: list[str] = []
    for name in (test.x, test.y, test.a, test.b):
        words = [w.lower() for w in word_sets[name]]
        found.append([w for w in words if w in vectors])
        missing += [w for w in words if w not in vectors]
    n_target = min(len(found[0]), len(found[1]))
    found[0], found[1] = found[0][:n_target], found[1][:n_target]
    if n_target < 2 or not found[2] or not found[3]:
        raise ValueError(f"too few words of {test.name!r} in the vocabulary: {found}")
    x, y, a, b = (np.stack([vectors[w] for w in words]) for words in found)
    return WeatResult(
        test=test,
        effect_size=weat_effect_size(x, y, a, b),
        p_value=weat_p_value(x, y, a, b, n_permutations=n_permutations, seed=seed),
        n_words=tuple(len(f) for f in found),  # type: ignore[arg-type]
        missing=tuple(missing),
    )


def bias_direction(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The unit direction along which counterfactual pairs differ most (Bolukbasi et al.).

    Each pair (first[i], second[i]) is centred on its mean, and the top right singular vector
    of the centred vectors is the direction (the first principal component of the pairs'
    differences). Its sign is chosen so that ``first`` lies on the positive side on average.

    Args:
        first, second: (n, D) vectors of the two members of n pairs, e.g. sentence embeddings
            of "he ..." and "she ...".

    Returns:
        (D,) unit vector.
    """
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"first {first.shape} and second {second.shape} must be equal (n, D)")
    centre = (first + second) / 2
    stacked = np.concatenate([first - centre, second - centre])  # (2n, D)
    direction = np.linalg.svd(stacked, full_matrices=False)[2][0]  # (D,)
    if ((first - second) @ direction).mean() < 0:
        direction = -direction
    return direction


def project_out(vectors: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Remove the span of ``directions`` from every row: v - V^T (V v) for orthonormal rows V.

    Args:
        vectors: (n, D) or (D,).
        directions: (k, D) or (D,), linearly independent; they are orthonormalised first.
    """
    basis = np.atleast_2d(np.asarray(directions, dtype=np.float64))  # (k, D)
    q, _ = np.linalg.qr(basis.T)  # (D, k), orthonormal columns
    v = np.asarray(vectors, dtype=np.float64)
    return v - (v @ q) @ q.T
