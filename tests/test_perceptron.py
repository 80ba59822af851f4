"""Tests for llmbook_utils.perceptron against scikit-learn's Perceptron and the XOR bound."""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Perceptron

from llmbook_utils.perceptron import train_perceptron

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0]}


def sklearn_perceptron(x, y, epochs):
    """scikit-learn with the plain rule: no shuffling, no penalty, no early stop, step 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return Perceptron(shuffle=False, eta0=1.0, penalty=None, tol=None, max_iter=epochs).fit(
            x, y
        )


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("epochs", [1, 2, 5, 20])
def test_equals_sklearn_with_its_tie_convention(gate, epochs):
    y = np.array(GATES[gate])
    ours = train_perceptron(X, y, epochs, update_on_zero=True)
    reference = sklearn_perceptron(X, y, epochs)
    np.testing.assert_array_equal(ours.weights, reference.coef_[0])
    assert ours.bias == reference.intercept_[0]
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def test_equals_sklearn_on_random_separable_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 > 0).astype(int)
    ours = train_perceptron(x, y, 30, update_on_zero=True)
    reference = sklearn_perceptron(x, y, 30)
    np.testing.assert_allclose(ours.weights, reference.coef_[0], rtol=1e-12, atol=1e-12)
    assert ours.accuracy[-1] == reference.score(x, y) == 1.0  # separable: it converges


@pytest.mark.parametrize("gate", ["AND", "OR"])
def test_classic_rule_converges_on_separable_gates(gate):
    y = np.array(GATES[gate])
    result = train_perceptron(X, y, 20)
    assert result.accuracy[-1] == 1.0
    assert result.mistakes[-1] == 0  # converged: a whole epoch without an update


def test_xor_never_above_three_quarters():
    """No line separates XOR, so no linear unit classifies more than 3 of its 4 points."""
    y = np.array(GATES["XOR"])
    for order in itertools.permutations(range(4)):
        result = train_perceptron(X[list(order)], y[list(order)], 50)
        assert result.step_accuracy.max() <= 0.75
        assert result.mistakes.min() > 0  # it never stops updating
    for seed in range(5):  # scikit-learn's default, shuffled training agrees
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            assert Perceptron(random_state=seed).fit(X, y).score(X, y) <= 0.75


def test_bad_input():
    with pytest.raises(ValueError, match="labels"):
        train_perceptron(X, np.array([0, 1, 2, 1]), 3)
    with pytest.raises(ValueError, match="epochs"):
        train_perceptron(X, np.array(GATES["AND"]), 0)
