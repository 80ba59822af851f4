"""Metrics against scikit-learn, formulas and hand-counted examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
import torch.nn.functional as F

from llmbook_utils.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    f1_score,
    perplexity,
    precision_recall_f1,
)

RNG = np.random.default_rng(0)
Y_TRUE = RNG.integers(0, 3, 200)
Y_PRED = np.where(RNG.random(200) < 0.7, Y_TRUE, RNG.integers(0, 3, 200))


def test_hand_counted_example():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert confusion_matrix(y_true, y_pred).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    per_class = precision_recall_f1(y_true, y_pred, average=None)
    # class 0: TP 2, FP 0, FN 1; class 1: TP 1, FP 1, FN 1; class 2: TP 1, FP 1, FN 0
    assert np.allclose(per_class["precision"], [1.0, 0.5, 0.5])
    assert np.allclose(per_class["recall"], [2 / 3, 0.5, 1.0])
    assert np.allclose(per_class["f1"], [0.8, 0.5, 2 / 3])
    assert per_class["support"].tolist() == [3, 2, 1] and per_class["labels"] == [0, 1, 2]
    assert f1_score(y_true, y_pred) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
def test_equal_to_sklearn(average):
    ours = precision_recall_f1(torch.tensor(Y_TRUE), torch.tensor(Y_PRED), average=average)
    p, r, f, _ = skm.precision_recall_fscore_support(Y_TRUE, Y_PRED, average=average)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f))
    assert accuracy(list(Y_TRUE), list(Y_PRED)) == pytest.approx(skm.accuracy_score(Y_TRUE, Y_PRED))
    assert np.array_equal(confusion_matrix(Y_TRUE, Y_PRED), skm.confusion_matrix(Y_TRUE, Y_PRED))


def test_classification_report_equals_sklearn():
    names = ["negative", "neutral", "positive"]
    frame = classification_report(Y_TRUE, Y_PRED, target_names=names)
    reference = skm.classification_report(Y_TRUE, Y_PRED, target_names=names, output_dict=True)
    assert list(frame.index) == [*names, "accuracy", "macro avg", "weighted avg"]
    assert list(frame.columns) == ["precision", "recall", "f1", "support"]
    for row in [*names, "macro avg", "weighted avg"]:
        assert frame.loc[row, "precision"] == pytest.approx(reference[row]["precision"])
        assert frame.loc[row, "recall"] == pytest.approx(reference[row]["recall"])
        assert frame.loc[row, "f1"] == pytest.approx(reference[row]["f1-score"])
        assert frame.loc[row, "support"] == reference[row]["support"]
    assert frame.loc["accuracy", "f1"] == pytest.approx(reference["accuracy"])
    # A class that is never predicted gets 0 (not a warning or NaN).
    missing = classification_report([0, 1, 2, 2], [0, 1, 1, 1], labels=[0, 1, 2])
    assert missing.loc["2", "precision"] == 0.0 and missing.loc["2", "support"] == 2


def test_perplexity_from_cross_entropy():
    vocab = 50
    uniform = torch.zeros(8, vocab)  # equal logits: the model spreads probability evenly
    targets = torch.randint(0, vocab, (8,))
    assert perplexity(F.cross_entropy(uniform, targets)) == pytest.approx(vocab)
    logits = torch.randn(8, vocab)
    nll = F.cross_entropy(logits, targets)
    assert perplexity(nll) == pytest.approx(math.exp(nll.item()))
    assert perplexity(0.0) == 1.0 and perplexity(1e4) == math.inf
    with pytest.raises(ValueError, match="mean_nll=-1.0"):
        perplexity(-1.0)


def test_bad_inputs_name_the_values():
    with pytest.raises(ValueError, match="y_true has 3 items but y_pred has 2"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        f1_score([], [])
    with pytest.raises(
        ValueError, match=r"labels \[7\] are not among the known labels \[0, 1, 2\]"
    ):
        confusion_matrix([0, 1, 7], [0, 1, 2], labels=[0, 1, 2])
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        accuracy(torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match="average='binary'"):
        precision_recall_f1([0, 1], [0, 1], average="binary")
    with pytest.raises(ValueError, match="2 target_names"):
        classification_report([0, 1, 2], [0, 1, 2], target_names=["a", "b"])
