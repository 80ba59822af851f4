"""scaling_law: fits recover Hoffmann et al.'s published law; the compute-optimal split is the
minimum of the loss along 6ND = C (checked by a brute-force search)."""

from __future__ import annotations

import numpy as np
import pytest

from llmbook_utils.scaling_law import (
    HOFFMANN,
    ScalingLaw,
    compute_optimal,
    fit_power_law,
    fit_scaling_law,
)


def test_fit_recovers_hoffmann_and_extrapolates():
    law = ScalingLaw(**HOFFMANN)
    n = np.array([7e7, 4e8, 2e9, 1e10] * 4)
    d = np.repeat([5e9, 2e10, 1e11, 5e11], 4)
    fit = fit_scaling_law(n, d, law(n, d))
    assert abs(fit.alpha - HOFFMANN["alpha"]) < 0.03
    assert abs(fit.beta - HOFFMANN["beta"]) < 0.03
    assert fit(3e10, 1e12) == pytest.approx(law(3e10, 1e12), rel=5e-3)  # held out


def test_fit_recovers_a_small_model_law():
    law = ScalingLaw(E=0.8, A=30.0, alpha=0.5, B=60.0, beta=0.3)
    n = np.array([6e3, 1.4e4, 2.5e4, 5.6e4] * 4)
    d = np.repeat([5e5, 1e6, 2e6, 4e6], 4)
    fit = fit_scaling_law(n, d, law(n, d))
    assert fit.alpha == pytest.approx(0.5, abs=0.01) and fit.beta == pytest.approx(0.3, abs=0.01)
    assert abs(fit.E - 0.8) < 0.01


def test_power_law():
    x = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    fit = fit_power_law(x, 1.5 + 20 / x**0.4)
    assert (fit.E, fit.A, fit.alpha) == pytest.approx((1.5, 20.0, 0.4), rel=1e-4)


def test_compute_optimal_is_the_minimum_along_the_budget():
    law = ScalingLaw(**HOFFMANN)
    c = 5.76e23  # Chinchilla's compute
    n_opt, d_opt = compute_optimal(law, c)
    assert 6 * n_opt * d_opt == pytest.approx(c)
    grid = np.logspace(9, 12, 20_001)
    brute = grid[np.argmin(law(grid, c / (6 * grid)))]
    assert n_opt == pytest.approx(brute, rel=1e-3)


def test_validation():
    with pytest.raises(ValueError, match="too few"):
        fit_scaling_law([1, 2], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="> 0"):
        fit_power_law([1, 2, 3, 0], [1, 1, 1, 1])
