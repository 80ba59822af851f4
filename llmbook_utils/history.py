"""Landmark models of deep learning, and the compute arithmetic of chapter 1.

- ``load_landmarks()``: a sourced table of landmark models from the perceptron (1958) to the
  2020s, shipped as package data (``data_files/landmark_models.csv``). Every row names the paper
  it comes from (a key of ``book/references.bib``); parameters, training tokens and training
  compute are given only where the paper publishes them, and are missing (NaN) otherwise.
- ``fit_trend()``: a straight line through log10(value) against year, and its doubling time.
- ``training_flops_6nd()``, ``gpt_step_flops()``, ``count_training_flops()``: the 6ND rule,
  the exact matmul count of one training step of ``llmbook_utils.gpt.GPT``, and the count that
  ``torch.utils.flop_counter.FlopCounterMode`` measures.
- ``training_days()``: wall-clock time of a training run from its FLOPs, the number of
  accelerators, their peak throughput and the model FLOPs utilisation (MFU).

Symbols: N parameters, D training tokens (in this module's arguments: ``n_params``,
``n_tokens``); B batch, T sequence length, C = d_model, L layers, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas and torch are imported where used
    import pandas as pd
    from torch import Tensor, nn

    from llmbook_utils.gpt import GPTConfig

LANDMARKS_FILE = "landmark_models.csv"
LANDMARK_COLUMNS = (
    "model",  # name as the paper writes it
    "year",  # year of first public release (preprint or paper)
    "organisation",
    "area",  # language, vision, speech or other
    "parameters",  # N, as published; NaN where not published
    "active_parameters",  # parameters used per token by a mixture of experts; NaN = all of them
    "training_tokens",  # D, as published; NaN where not published or not tokens
    "training_flops",  # total training compute in FLOPs, as published; NaN otherwise
    "bibkey",  # key in book/references.bib
    "note",  # where the numbers come from, and caveats
)
AREAS = ("language", "vision", "speech", "other")


def load_landmarks() -> pd.DataFrame:
    """The table of landmark models, one row per model, sorted by year.

    Returns:
        A DataFrame with the columns of ``LANDMARK_COLUMNS``; ``parameters``,
        ``active_parameters``, ``training_tokens`` and ``training_flops`` are floats with NaN
        where unpublished (``active_parameters``: NaN unless only some are used per token).

    Raises:
        ValueError: if the shipped file is malformed (missing columns, unknown area,
            non-positive numbers).
    """
    import pandas as pd

    with resources.files("llmbook_utils").joinpath("data_files", LANDMARKS_FILE).open() as f:
        table = pd.read_csv(f, keep_default_na=False, na_values=[""])
    missing = [c for c in LANDMARK_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{LANDMARKS_FILE} lacks the columns {missing}")
    numbers = ["parameters", "active_parameters", "training_tokens", "training_flops"]
    table[numbers] = table[numbers].astype(float)
    table["note"] = table["note"].fillna("")
    bad_area = sorted(set(table["area"]) - set(AREAS))
    if bad_area:
        raise ValueError(f"unknown areas {bad_area} in {LANDMARKS_FILE}; expected {AREAS}")
    for column in numbers:
        if (table[column] <= 0).any():
            rows = table.loc[table[column] <= 0, "model"].tolist()
            raise ValueError(f"non-positive {column} for {rows} in {LANDMARKS_FILE}")
    return table.sort_values("year", kind="stable").reset_index(drop=True)[list(LANDMARK_COLUMNS)]


@dataclass(frozen=True)
class Trend:
    """An exponential trend, value = 10 ** (intercept + slope * year).

    Attributes:
        slope: orders of magnitude (powers of 10) per year.
        intercept: log10 of the value in year 0 (only meaningful together with ``slope``).
        n_points: how many (year, value) pairs were fitted.
    """

    slope: float
    intercept: float
    n_points: int

    @property
    def doubling_months(self) -> float:
        """Months for the value to double: 12 log10(2) / slope."""
        return 12 * math.log10(2) / self.slope

    @property
    def factor_per_year(self) -> float:
        """The growth factor per year, 10 ** slope."""
        return 10**self.slope

    def predict(self, years: np.ndarray) -> np.ndarray:
        """The trend's values at ``years``."""
        return 10 ** (self.intercept + self.slope * np.asarray(years, dtype=float))


def fit_trend(years: np.ndarray, values: np.ndarray) -> Trend:
    """Least-squares line through log10(values) against years.

    Args:
        years: (n,) years (fractions allowed).
        values: (n,) positive values, e.g. parameter counts.

    Raises:
        ValueError: with fewer than 2 points, different lengths, non-positive values, or all
            points in the same year.
    """
    years = np.asarray(years, dtype=float)
    values = np.asarray(values, dtype=float)
    if years.shape != values.shape or years.ndim != 1:
        raise ValueError(f"years {years.shape} and values {values.shape} must be equal 1-D shapes")
    if len(years) < 2 or np.ptp(years) == 0:
        raise ValueError(f"need at least 2 distinct years, got {sorted(set(years.tolist()))}")
    if (values <= 0).any() or not np.isfinite(values).all():
        raise ValueError("values must be positive and finite (drop the missing ones first)")
    slope, intercept = np.polyfit(years, np.log10(values), 1)
    return Trend(float(slope), float(intercept), len(years))


def bootstrap_doubling_months(
    years: np.ndarray, values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """A percentile bootstrap interval for the doubling time of ``fit_trend``.

    Rows are resampled with replacement; resamples with all points in one year are skipped.

    Returns:
        (low, high) doubling time in months, the central ``level`` of the bootstrap.
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1)")
    years = np.asarray(years, dtype=float)
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(years), len(years))
        if np.ptp(years[pick]) == 0:
            continue
        slopes.append(np.polyfit(years[pick], np.log10(values[pick]), 1)[0])
    months = 12 * math.log10(2) / np.asarray(slopes)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(months, [tail, 100 - tail])
    return float(low), float(high)


def training_flops_6nd(n_params: float, n_tokens: float) -> float:
    """The 6ND estimate of training compute: 2N FLOPs per token forward, 4N backward.

    Kaplan et al., "Scaling Laws for Neural Language Models", 2020,
    https://arxiv.org/abs/2001.08361 (section 2.1).
    """
    if n_params <= 0 or n_tokens <= 0:
        raise ValueError(f"n_params={n_params} and n_tokens={n_tokens} must be positive")
    return 6.0 * n_params * n_tokens


@dataclass(frozen=True)
class StepFlops:
    """The FLOPs of one training step (forward and backward) of a GPT, by origin.

    Attributes:
        matmul_params: parameters that take part in a matrix product (the projections, the
            feed-forward matrices and the language-model head); biases, norms and position
            embeddings do not.
        tokens: B * T, the tokens of the batch.
        weights: 6 * matmul_params * tokens, the FLOPs of the products with weights.
        attention: 12 * L * T * C * tokens, the FLOPs of Q K^T and A V, forward and backward,
            counted over the full T x T score matrix as an unfused kernel computes it.
    """

    matmul_params: int
    tokens: int
    weights: int
    attention: int

    @property
    def total(self) -> int:
        """weights + attention."""
        return self.weights + self.attention


def gpt_step_flops(config: GPTConfig, batch_size: int, seq_len: int) -> StepFlops:
    """The exact count of matrix-product FLOPs in one training step of ``GPT(config)``.

    Forward, a matrix product with a weight of shape (n, m) costs 2 n m FLOPs per token (one
    multiply and one add per weight); backward costs twice that (the gradient with respect to the
    input and the one with respect to the weight). Attention adds, per layer and token, 2 T C for
    the scores Q K^T and 2 T C for A V forward, and twice that backward.

    Args:
        config: the model's configuration.
        batch_size: B sequences.
        seq_len: T tokens per sequence (at most ``config.context_length``).
    """
    if batch_size < 1 or not 1 <= seq_len <= config.context_length:
        raise ValueError(
            f"batch_size={batch_size} must be >= 1 and seq_len={seq_len} in "
            f"[1, context_length={config.context_length}]"
        )
    c = config
    per_layer = 4 * c.d_model * c.d_model + 2 * c.d_model * c.ff_width  # q, k, v, out; FFN
    matmul_params = c.n_layers * per_layer + c.vocab_size * c.d_model  # + language-model head
    tokens = batch_size * seq_len
    return StepFlops(
        matmul_params=matmul_params,
        tokens=tokens,
        weights=6 * matmul_params * tokens,
        attention=12 * c.n_layers * seq_len * c.d_model * tokens,
    )


def count_training_flops(model: nn.Module, idx: Tensor, targets: Tensor) -> dict[str, int]:
    """Count the FLOPs of one forward and backward pass with ``FlopCounterMode``.

    The counter knows formulas for matrix products and for some fused attention kernels, but
    not for PyTorch's fused CPU attention kernel, so attention is forced onto the unfused
    ("math") path, whose matrix products it counts. Gradients are left in the parameters.

    Args:
        model: a model returning ``(logits, loss)``.
        idx: (B, T) token ids.
        targets: (B, T) next-token ids.

    Returns:
        ``{operator name: FLOPs}`` plus ``"total"``.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        _, loss = model(idx, targets)
        loss.backward()
    counts = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    counts["total"] = int(counter.get_total_flops())
    return counts


def training_days(flops: float, n_devices: int, peak_flops_per_device: float, mfu: float) -> float:
    """Days of training: flops / (n_devices * peak * MFU) / 86,400 s.

    Args:
        flops: total training FLOPs (e.g. 6ND).
        n_devices: accelerators training together.
        peak_flops_per_device: their peak throughput in FLOP/s (e.g. 312e12 for an A100 in
            bf16 without sparsity).
        mfu: model FLOPs utilisation, the achieved share of the peak (0 < mfu <= 1).
    """
    if flops <= 0 or n_devices < 1 or peak_flops_per_device <= 0:
        raise ValueError(
            f"flops={flops}, n_devices={n_devices}, peak_flops_per_device="
            f"{peak_flops_per_device} must be positive"
        )
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu={mfu} must be in (0, 1]")
    return flops / (n_devices * peak_flops_per_device * mfu) / 86_400
