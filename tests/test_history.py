"""Tests for llmbook_utils.history: the landmark table and the training-FLOP arithmetic.

References: the published numbers of the papers (GPT-3, GPT-2, BERT, ...), the bibliography
file, and the matrix-product FLOP formula of a Transformer checked with PyTorch's own
``torch.utils.flop_counter.FlopCounterMode``.
"""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.history import (
    bootstrap_doubling_months,
    count_training_flops,
    fit_trend,
    gpt_step_flops,
    load_landmarks,
    training_days,
    training_flops_6nd,
)

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


@pytest.fixture(scope="module")
def table():
    return load_landmarks()


def test_table_size_and_span(table):
    assert len(table) >= 25
    assert table["year"].min() == 1958
    assert table["year"].max() >= 2020
    assert table["model"].is_unique
    assert table["year"].is_monotonic_increasing


def test_every_bibkey_is_in_references(table):
    keys = set(re.findall(r"^@\w+\{([^,]+),", BIB.read_text(encoding="utf-8"), re.MULTILINE))
    missing = sorted(set(table["bibkey"]) - keys)
    assert not missing, f"bib keys missing from book/references.bib: {missing}"


def test_numbers_positive_and_plenty_published(table):
    for column in ("parameters", "training_tokens", "training_flops"):
        known = table[column].dropna()
        assert (known > 0).all(), column
    assert table["parameters"].notna().sum() >= 20  # enough points for the trend line


@pytest.mark.parametrize(
    "model, parameters",
    [
        ("GPT-3", 175e9),  # Brown et al. 2020, Table 2.1
        ("GPT-2", 1.5e9),  # Radford et al. 2019
        ("BERT-large", 340e6),  # Devlin et al. 2019
        ("BERT-base", 110e6),
        ("AlexNet", 60e6),  # Krizhevsky et al. 2012
        ("LeNet-5", 60e3),  # LeCun et al. 1998
        ("Chinchilla", 70e9),  # Hoffmann et al. 2022
        ("Transformer (big)", 213e6),  # Vaswani et al. 2017, Table 3
    ],
)
def test_published_parameter_counts(table, model, parameters):
    row = table.set_index("model").loc[model]
    assert row["parameters"] == parameters


def test_published_compute_and_tokens(table):
    rows = table.set_index("model")
    assert rows.loc["GPT-3", "training_tokens"] == 300e9
    assert rows.loc["GPT-3", "training_flops"] == 3.14e23  # Table D.1
    assert rows.loc["Chinchilla", "training_tokens"] == 1.4e12
    # 6ND reproduces the published totals to within a few percent where both are known.
    both = table.dropna(subset=["parameters", "training_tokens", "training_flops"])
    assert len(both) >= 3
    ratio = 6 * both["parameters"] * both["training_tokens"] / both["training_flops"]
    assert ratio.between(0.95, 1.05).all(), ratio.tolist()


def test_fit_trend_recovers_a_known_doubling_time():
    years = np.arange(2000, 2020, dtype=float)
    values = 3.0 * 2 ** ((years - 2000) * 12 / 6)  # doubles every 6 months
    trend = fit_trend(years, values)
    assert trend.doubling_months == pytest.approx(6.0)
    assert trend.predict(np.array([2001.0]))[0] == pytest.approx(12.0)
    low, high = bootstrap_doubling_months(years, values * np.exp(0.1 * np.sin(years)), 200)
    assert low < 6.0 < high
    with pytest.raises(ValueError, match="distinct years"):
        fit_trend(np.array([2000.0, 2000.0]), np.array([1.0, 2.0]))


def test_6nd_and_training_days():
    assert training_flops_6nd(175e9, 300e9) == pytest.approx(3.15e23)
    # LLaMA-65B (Touvron et al. 2023): 380 tokens/s/GPU on 2,048 GPUs for 1.4T tokens ~ 21 days.
    mfu = 6 * 65.2e9 * 380 / 312e12  # the utilisation those numbers imply on an A100
    days = training_days(training_flops_6nd(65.2e9, 1.4e12), 2048, 312e12, mfu)
    assert days == pytest.approx(1.4e12 / (380 * 2048) / 86_400)
    assert 20 < days < 22
    with pytest.raises(ValueError, match="mfu"):
        training_days(1e20, 8, 312e12, 1.5)


def test_flop_counter_equals_the_formula_and_is_near_6nd():
    """FlopCounterMode on one training step of a tiny GPT against 6ND + the attention term."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=50, context_length=32, d_model=32, n_layers=2, n_heads=4)
    model = GPT(config)
    B, T = 3, 32
    idx = torch.randint(0, config.vocab_size, (B, T))
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:  # the unfused path, whose matmuls are counted
        _, loss = model(idx, idx)
        loss.backward()
    measured = counter.get_total_flops()
    # The formula derived in chapter 1: 6 FLOPs per token per matmul weight, plus
    # 12 L T d_model per token for Q K^T and A V forward and backward.
    d, L, V = config.d_model, config.n_layers, config.vocab_size
    matmul_weights = L * (4 * d * d + 2 * d * 4 * d) + V * d
    formula = 6 * matmul_weights * B * T + 12 * L * T * d * B * T
    assert measured == formula
    assert gpt_step_flops(config, B, T).total == formula
    model.zero_grad()
    assert count_training_flops(model, idx, idx)["total"] == formula
    # Against the textbook 6ND with N = all parameters: the band we state in the chapter.
    ratio_6nd = measured / (6 * model.num_parameters() * B * T)
    attention_share = 12 * L * T * d / (6 * model.num_parameters())
    assert 0.85 < ratio_6nd / (1 + attention_share) < 1.0  # biases, norms, positions: no matmul


def test_chapter_cites_every_source(table):
    """Chapter 1 cites every row's paper, so that each appears in the bibliography."""
    import nbformat

    chapter = Path(__file__).resolve().parents[1] / "chapters" / "01_history.ipynb"
    if not chapter.exists():
        pytest.skip("chapter 1 not written")
    text = "\n".join(c.source for c in nbformat.read(chapter, as_version=4).cells)
    cited = set()
    for group in re.findall(r"\{cite:[pt]\}`([^`]+)`", text):
        cited.update(key.strip() for key in group.split(","))
    missing = sorted(set(table["bibkey"]) - cited)
    assert not missing, f"chapter 1 does not cite {missing}"
