"""Scaling laws: fit the loss of trained models as a function of their size and data.

Hoffmann et al. (2022, https://arxiv.org/abs/2203.15556, "Chinchilla") model the final loss of
a model with N parameters trained on D tokens as

    L(N, D) = E + A / N^alpha + B / D^beta,

an irreducible loss E plus one term that shrinks with size and one that shrinks with data.
They fit it by minimising a Huber loss of the log-residuals, ``log L_hat - log L``, from a grid
of starting points (``fit_scaling_law``); their fit: E = 1.69, A = 406.4, B = 410.7,
alpha = 0.34, beta = 0.28. Kaplan et al. (2020, https://arxiv.org/abs/2001.08361) fitted
one-variable power laws ``L(N) = (N_c / N)^alpha_N`` with alpha_N = 0.076 and
``L(D) = (D_c / D)^alpha_D`` with alpha_D = 0.095; ``fit_power_law`` fits the one-variable form
with an offset, ``L(x) = E + A / x^alpha``.

With compute ``C = 6 N D``, the loss is smallest at (``compute_optimal``)

    N_opt = G (C / 6)^(beta / (alpha + beta)),  D_opt = C / (6 N_opt),
    G = (alpha A / (beta B))^(1 / (alpha + beta)).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
KAPLAN = {"alpha_N": 0.076, "alpha_D": 0.095}


@dataclass(frozen=True)
class ScalingLaw:
    """``L(N, D) = E + A / N^alpha + B / D^beta``."""

    E: float  # irreducible loss (nats per token)
    A: float  # size coefficient
    alpha: float  # size exponent
    B: float  # data coefficient
    beta: float  # data exponent

    def __call__(self, n_params: np.ndarray | float, n_tokens: np.ndarray | float) -> np.ndarray:
        """The predicted loss for N parameters and D tokens (broadcasting)."""
        n, d = np.asarray(n_params, dtype=float), np.asarray(n_tokens, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta


@dataclass(frozen=True)
class PowerLaw:
    """``L(x) = E + A / x^alpha``."""

    E: float
    A: float
    alpha: float

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        """The predicted loss at x."""
        return self.E + self.A / np.asarray(x, dtype=float) ** self.alpha


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    small = np.abs(r) <= delta
    return np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))


def _check(*arrays: np.ndarray) -> None:
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"lengths differ: {[len(a) for a in arrays]}")
    if any(np.any(a <= 0) for a in arrays):
        raise ValueError("sizes, token counts and losses must all be > 0")


def fit_scaling_law(
    n_params: np.ndarray, n_tokens: np.ndarray, losses: np.ndarray, delta: float = 1e-3
) -> ScalingLaw:
    """Fit ``L(N, D)`` as Hoffmann et al. do: Huber loss on log-residuals, L-BFGS, many starts.

    The parameters are optimised as ``a = log A``, ``b = log B``, ``e = log E``, so that
    ``log L_hat = logsumexp(a - alpha log N, b - beta log D, e)`` stays finite. The starts: a
    coarse grid, and the best linear least-squares fits of (E, A, B) for a grid of exponents
    (for fixed alpha and beta the law is linear in E, A and B).

    Args:
        n_params: N of each run (at least 6 runs: the law has 5 parameters).
        n_tokens: D of each run.
        losses: the measured loss of each run (nats per token).
        delta: the Huber threshold (Hoffmann et al.: 1e-3).

    Returns:
        The best ``ScalingLaw`` over the starting grid.
    """
    from scipy.optimize import minimize

    n, d, y = (np.asarray(v, dtype=float) for v in (n_params, n_tokens, losses))
    _check(n, d, y)
    if len(y) < 6:
        raise ValueError(f"{len(y)} runs are too few to fit 5 parameters (need >= 6)")
    log_n, log_d, log_y = np.log(n), np.log(d), np.log(y)

    def objective(p: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, e, alpha, beta = p
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        top = terms.max(axis=0)
        log_pred = top + np.log(np.exp(terms - top).sum(axis=0))  # logsumexp: (R,) for R runs
        r = log_pred - log_y
        weights = np.exp(terms - log_pred)  # (3, R): d log_pred / d terms
        slope = np.clip(r, -delta, delta)  # the Huber loss's derivative
        grad = np.array([
            (slope * weights[0]).sum(), (slope * weights[1]).sum(), (slope * weights[2]).sum(),
            -(slope * weights[0] * log_n).sum(), -(slope * weights[1] * log_d).sum(),
        ])  # fmt: skip
        return float(_huber(r, delta).sum()), grad

    best = None
    starts = [*_linear_starts(log_n, log_d, y),
              *itertools.product([0, 10], [0, 10], [-1, 0.5], [0.3], [0.3])]  # fmt: skip
    for start in starts:
        result = minimize(objective, np.array(start, dtype=float), jac=True, method="L-BFGS-B")
        if best is None or result.fun < best.fun:
            best = result
    a, b, e, alpha, beta = best.x
    return ScalingLaw(E=float(np.exp(e)), A=float(np.exp(a)), alpha=float(alpha),
                      B=float(np.exp(b)), beta=float(beta))  # fmt: skip


def _linear_starts(
    log_n: np.ndarray, log_d: np.ndarray, y: np.ndarray, keep: int = 8
) -> list[tuple[float, ...]]:
    """Starting points (a, b, e, alpha, beta): least squares in (E, A, B) on an exponent grid."""
    fits = []
    for alpha in np.linspace(0.05, 1.5, 30):
        for beta in np.linspace(0.05, 1.5, 30):
            design = np.stack([np.ones_like(y), np.exp(-alpha * log_n), np.exp(-beta * log_d)], 1)
            coef, *_ = np.linalg.lstsq(design, y, rcond=None)  # (E, A, B)
            if np.all(coef > 0):
                error = float(((design @ coef - y) ** 2).sum())
                fits.append(
                    (error, (np.log(coef[1]), np.log(coef[2]), np.log(coef[0]), alpha, beta))
                )
    fits.sort(key=lambda fit: fit[0])
    return [start for _, start in fits[:keep]]


def fit_power_law(x: np.ndarray, losses: np.ndarray) -> PowerLaw:
    """Fit ``L(x) = E + A / x^alpha`` by least squares on the losses (``scipy.optimize``).

    Args:
        x: sizes or token counts (at least 4 points).
        losses: the losses at x.
    """
    from scipy.optimize import curve_fit

    x, y = np.asarray(x, dtype=float), np.asarray(losses, dtype=float)
    _check(x, y)
    if len(y) < 4:
        raise ValueError(f"{len(y)} points are too few to fit 3 parameters (need >= 4)")
    scale = np.median(x)  # fit in units of the median x: well-conditioned

    def law(u: np.ndarray, e: float, a: float, alpha: float) -> np.ndarray:
        return e + a / u**alpha

    params, _ = curve_fit(law, x / scale, y, p0=(0.5 * y.min(), y.max() - 0.5 * y.min(), 0.3),
                          bounds=([0, 0, 0], [np.inf, np.inf, 5]), maxfev=20_000)  # fmt: skip
    e, a, alpha = params
    return PowerLaw(E=float(e), A=float(a * scale**alpha), alpha=float(alpha))


def compute_optimal(law: ScalingLaw, flops: float) -> tuple[float, float]:
    """The (N_opt, D_opt) that minimise ``law`` under ``6 N D = flops``.

    Setting dL/dN = 0 along D = C / (6 N) gives ``alpha A / N^alpha = beta B / D^beta``, solved
    by the closed form in the module docstring.
    """
    if flops <= 0:
        raise ValueError(f"flops={flops} must be > 0")
    s = law.alpha + law.beta
    g = (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / s)
    n_opt = g * (flops / 6.0) ** (law.beta / s)
    return n_opt, flops / (6.0 * n_opt)
