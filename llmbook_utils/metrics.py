"""Evaluation metrics: accuracy, precision / recall / F1, confusion matrix, perplexity.

The classification metrics are scikit-learn's, behind one input check: predictions and
references must be 1-D, non-empty and of equal length, and when ``labels`` is given every value
must be one of them (a ``ValueError`` names the offending values). Inputs may be lists, NumPy
arrays or torch tensors of class ids (or strings).

For a class c, with TP/FP/FN counted over the examples:
``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
``F1 = 2 * precision * recall / (precision + recall)``; macro averages weigh every class
equally, which is what matters with imbalanced classes. Undefined ratios (no prediction of a
class) count as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def as_numpy(values: Any) -> np.ndarray:
    """``values`` as a NumPy array; a torch tensor is detached and moved to the CPU first."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _as_array(values: Any, name: str) -> np.ndarray:
    array = as_numpy(values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D class labels, got shape {array.shape} "
            "(for logits pass logits.argmax(-1))"
        )
    return array


def _check(
    y_true: Any, y_pred: Any, labels: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray, list | None]:
    """Validate a (references, predictions) pair; returns them as arrays."""
    y_true, y_pred = _as_array(y_true, "y_true"), _as_array(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty")
    if labels is not None:
        labels = list(labels)
        if not labels:
            raise ValueError("labels is empty")
        unknown = sorted({*y_true.tolist(), *y_pred.tolist()} - set(labels), key=str)
        if unknown:
            raise ValueError(f"labels {unknown} are not among the known labels {labels}")
    return y_true, y_pred, labels


def accuracy(y_true: Any, y_pred: Any, labels: Sequence | None = None) -> float:
    """Fraction of predictions equal to the reference."""
    from sklearn.metrics import accuracy_score

    y_true, y_pred, _ = _check(y_true, y_pred, labels)
    return float(accuracy_score(y_true, y_pred))


def precision_recall_f1(
    y_true: Any, y_pred: Any, average: str | None = "macro", labels: Sequence | None = None
) -> dict[str, Any]:
    """Precision, recall and F1, averaged or per class.

    Args:
        y_true: reference labels.
        y_pred: predicted labels.
        average: ``"macro"`` (unweighted mean over classes), ``"weighted"`` (by support),
            ``"micro"`` (global counts) or ``None`` (one value per class).
        labels: the classes, in order; default all labels that occur, sorted.

    Returns:
        ``{"precision", "recall", "f1"}``: floats, or arrays over ``labels`` when
        ``average=None`` (then also ``"support"`` and ``"labels"``).
    """
    from sklearn.metrics import precision_recall_fscore_support

    if average not in ("macro", "weighted", "micro", None):
        raise ValueError(f"average={average!r} is not 'macro', 'weighted', 'micro' or None")
    y_true, y_pred, labels = _check(y_true, y_pred, labels)
    p, r, f, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=average, zero_division=0
    )
    if average is not None:
        return {"precision": float(p), "recall": float(r), "f1": float(f)}
    used = labels if labels is not None else np.unique(np.concatenate([y_true, y_pred])).tolist()
    return {"precision": p, "recall": r, "f1": f, "support": support, "labels": used}


def f1_score(
    y_true: Any, y_pred: Any, average: str = "macro", labels: Sequence | None = None
) -> float:
    """F1 score, macro-averaged by default (see ``precision_recall_f1``)."""
    return precision_recall_f1(y_true, y_pred, average, labels)["f1"]


def confusion_matrix(y_true: Any, y_pred: Any, labels: Sequence | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of examples of class ``labels[i]`` predicted as ``labels[j]``.

    Rows are references, columns predictions (scikit-learn's convention).
    """
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    y_true, y_pred, labels = _check(y_true, y_pred, labels)
    return sk_confusion_matrix(y_true, y_pred, labels=labels)


def classification_report(
    y_true: Any,
    y_pred: Any,
    labels: Sequence | None = None,
    target_names: Sequence[str] | None = None,
) -> Any:
    """Per-class precision, recall, F1 and support, plus accuracy and macro/weighted averages.

    Args:
        y_true: reference labels.
        y_pred: predicted labels.
        labels: the classes, in order; default all labels that occur, sorted.
        target_names: display names of ``labels`` (e.g. ``["negative", "neutral", "positive"]``).

    Returns:
        A pandas DataFrame with columns precision, recall, f1, support; one row per class
        (named by ``target_names``, else ``str(label)``), then rows ``accuracy`` (in the f1
        column, as scikit-learn prints it), ``macro avg`` and ``weighted avg``.
    """
    import pandas as pd
    from sklearn.metrics import classification_report as sk_report

    y_true, y_pred, labels = _check(y_true, y_pred, labels)
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred])).tolist()
    if target_names is not None and len(target_names) != len(labels):
        raise ValueError(
            f"{len(target_names)} target_names {list(target_names)} for {len(labels)} "
            f"labels {labels}"
        )
    report = sk_report(
        y_true,
        y_pred,
        labels=labels,
        target_names=[str(x) for x in (labels if target_names is None else target_names)],
        output_dict=True,
        zero_division=0,
    )
    accuracy_value = report.pop("accuracy", None)
    if accuracy_value is None:  # scikit-learn reports micro avg instead when labels are partial
        accuracy_value = accuracy(y_true, y_pred)
        report.pop("micro avg", None)
    frame = pd.DataFrame(report).T.rename(columns={"f1-score": "f1"})
    frame.loc["accuracy"] = [np.nan, np.nan, accuracy_value, float(len(y_true))]
    order = [*[k for k in frame.index if k not in ("macro avg", "weighted avg", "accuracy")]]
    frame = frame.loc[[*order, "accuracy", "macro avg", "weighted avg"]]
    frame["support"] = frame["support"].astype(int)
    return frame


def perplexity(mean_nll: float) -> float:
    """``exp(mean negative log-likelihood)``, the mean NLL in nats (as cross-entropy gives).

    A model that spreads its probability uniformly over V tokens has perplexity V.
    """
    value = float(mean_nll.item() if hasattr(mean_nll, "item") else mean_nll)
    if math.isnan(value) or value < 0:
        raise ValueError(f"mean_nll={value} must be a non-negative number of nats")
    return math.exp(value) if value < 700 else math.inf
