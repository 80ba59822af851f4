"""WEAT against its formula computed by hand, the permutation p-value against scipy's
permutation_test, the published effect sizes of Caliskan et al. (2017) on GloVe 6B 50d (roughly:
a smaller corpus and 50 dimensions), and the projection against a least-squares projection."""

import itertools

import numpy as np
import pytest
from scipy import stats

from llmbook_utils.bias import (
    WEAT_TESTS,
    bias_direction,
    load_weat_tests,
    project_out,
    run_weat,
    weat_effect_size,
    weat_p_value,
)
from llmbook_utils.vectors import load_glove

# A tiny example in two dimensions, by hand: A points along e1, B along e2.
X = np.array([[1.0, 0.0], [3.0, 1.0]])
Y = np.array([[0.0, 2.0], [1.0, 1.0]])
A = np.array([[1.0, 0.0]])
B = np.array([[0.0, 1.0]])


def test_effect_size_of_a_hand_example():
    cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    s = [cos(w, A[0]) - cos(w, B[0]) for w in [*X, *Y]]
    # s(x1) = 1, s(x2) = (3 - 1)/sqrt(10), s(y1) = -1, s(y2) = 0
    np.testing.assert_allclose(s, [1.0, 2 / np.sqrt(10), -1.0, 0.0])
    d = (np.mean(s[:2]) - np.mean(s[2:])) / np.std(s, ddof=1)
    assert weat_effect_size(X, Y, A, B) == pytest.approx(d)
    assert weat_effect_size(Y, X, A, B) == pytest.approx(-d)  # swapping the targets flips d


def test_exact_p_value_by_enumeration_and_against_scipy():
    rng = np.random.default_rng(0)
    x, y, a, b = (rng.normal(size=(n, 5)) for n in (5, 5, 4, 4))
    ours = weat_p_value(x, y, a, b, n_permutations=10_000)  # C(10, 5) = 252 splits: exact
    from llmbook_utils.bias import association

    s = np.concatenate([association(x, a, b), association(y, a, b)])
    observed = s[:5].sum() - s[5:].sum()
    by_hand = np.mean([s[list(c)].sum() - np.delete(s, list(c)).sum() >= observed - 1e-12
                       for c in itertools.combinations(range(10), 5)])  # fmt: skip
    assert ours == pytest.approx(by_hand)
    reference = stats.permutation_test(
        (s[:5], s[5:]), lambda u, v: u.sum() - v.sum(), permutation_type="independent",
        alternative="greater", n_resamples=np.inf,
    ).pvalue  # fmt: skip
    assert ours == pytest.approx(reference)


def test_sampled_p_value_is_close_to_the_exact_one():
    rng = np.random.default_rng(1)
    x, y, a, b = (rng.normal(size=(n, 4)) for n in (8, 8, 3, 3))
    x += 0.3 * a.mean(0)  # a weak association of X with A
    exact = weat_p_value(x, y, a, b, n_permutations=20_000)  # C(16, 8) = 12,870: exact
    sampled = weat_p_value(x, y, a, b, n_permutations=5_000, seed=0)
    assert sampled == pytest.approx(exact, abs=0.03)


@pytest.fixture(scope="module")
def glove():
    return load_glove()


def test_published_effect_sizes_roughly_on_glove_6b_50d(glove):
    tests, sets = load_weat_tests()
    assert len(tests) == 10
    results = [run_weat(glove, t, sets, n_permutations=2_000) for t in tests]
    d = np.array([r.effect_size for r in results])
    published = np.array([t.published_d for t in WEAT_TESTS])
    # Every association has the sign the paper found (X with A), and each effect size lies
    # within 0.7 of the published one; the two strongest non-social tests stay large.
    assert (d > 0).all()
    assert np.abs(d - published).max() < 0.7
    assert results[1].effect_size > 1.2  # instruments vs weapons (paper: 1.53)
    assert results[5].effect_size > 1.2  # male vs female names, career vs family (paper: 1.81)
    assert results[1].p_value < 0.01


def test_bias_direction_and_projection():
    rng = np.random.default_rng(2)
    true = np.array([1.0, 2.0, -2.0]) / 3
    base = rng.normal(size=(20, 3))
    first, second = base + 0.5 * true, base - 0.5 * true
    direction = bias_direction(first + 0.01 * rng.normal(size=(20, 3)), second)
    assert abs(direction @ true) == pytest.approx(1.0, abs=1e-3) and direction @ true > 0
    v = rng.normal(size=(5, 3))
    basis = rng.normal(size=(2, 3))
    ours = project_out(v, basis)
    coef, *_ = np.linalg.lstsq(basis.T, v.T, rcond=None)  # least-squares fit in span(basis)
    np.testing.assert_allclose(ours, v - (basis.T @ coef).T, atol=1e-12)
    np.testing.assert_allclose(project_out(ours, basis), ours, atol=1e-12)  # idempotent


def test_offline_without_cache_names_the_wheel(tmp_path, monkeypatch, pip_unreachable):
    monkeypatch.setattr("llmbook_utils.vectors._installed_file", lambda *a: None)
    with pytest.raises(RuntimeError, match="wefe==1.0.1"):
        load_weat_tests(cache_dir=tmp_path)
