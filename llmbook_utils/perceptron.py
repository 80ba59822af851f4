"""Rosenblatt's perceptron, trained with the error-correction rule.

Paper: F. Rosenblatt, "The Perceptron: A Probabilistic Model for Information Storage and
Organization in the Brain", Psychological Review 65(6), 1958. Convergence on linearly separable
data: A. Novikoff, "On Convergence Proofs on Perceptrons", 1962.

The unit predicts y_hat = 1 if w . x + b > 0 else 0 and, after each example, moves its weights
by lr * (y - y_hat) * x (and its bias by lr * (y - y_hat)): nothing happens when it is right,
and a mistake pushes the boundary towards the misclassified point's side.

Shapes: n examples, F input features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PerceptronResult:
    """What ``train_perceptron`` learned and how it got there.

    Attributes:
        weights: (F,) final weights w.
        bias: final bias b.
        accuracy: (epochs,) accuracy on the training data after each epoch.
        mistakes: (epochs,) number of updates made during each epoch.
        step_accuracy: (epochs * n,) accuracy on the training data after each example is seen.
        history: (epochs + 1, F + 1) [w, b] at the start and after each epoch.
    """

    weights: np.ndarray
    bias: float
    accuracy: np.ndarray
    mistakes: np.ndarray
    step_accuracy: np.ndarray
    history: np.ndarray = field(repr=False)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, F) -> (n,) predictions in {0, 1}."""
        return (np.asarray(x, dtype=float) @ self.weights + self.bias > 0).astype(int)


def train_perceptron(
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float = 1.0,
    update_on_zero: bool = False,
) -> PerceptronResult:
    """Train a perceptron from zero weights, visiting the examples in their given order.

    Args:
        x: (n, F) inputs.
        y: (n,) labels in {0, 1}.
        epochs: passes over the data (fixed: no early stop, so every run has the same length).
        lr: step size (for zero initial weights it only scales w and b, never the decisions).
        update_on_zero: also update when the score w . x + b is exactly 0 and the label is 0.
            The classic rule predicts 0 there and so sees no mistake; scikit-learn's
            ``Perceptron`` updates whenever y' (w . x + b) <= 0 with y' = +-1, i.e. also on
            this tie. ``True`` reproduces scikit-learn's updates exactly.

    Returns:
        The final weights and bias, and the accuracy and mistakes of every epoch.

    Raises:
        ValueError: for mismatched shapes, labels outside {0, 1}, epochs < 1 or lr <= 0.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, F) and y (n,), got {x.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {sorted(set(y.tolist()))}")
    if epochs < 1 or lr <= 0:
        raise ValueError(f"epochs={epochs} must be >= 1 and lr={lr} > 0")
    w = np.zeros(x.shape[1])
    b = 0.0
    accuracy, mistakes, step_accuracy, history = [], [], [], [np.append(w, b)]
    for _ in range(epochs):
        n_updates = 0
        for xi, yi in zip(x, y, strict=True):
            score = xi @ w + b
            error = yi - int(score > 0)  # -1, 0 or +1
            if error == 0 and update_on_zero and score == 0:
                error = -1  # scikit-learn: y' = -1 and y' * score <= 0 counts as a mistake
            if error != 0:
                w = w + lr * error * xi
                b = b + lr * error
                n_updates += 1
            step_accuracy.append(float(np.mean((x @ w + b > 0).astype(int) == y)))
        mistakes.append(n_updates)
        accuracy.append(float(np.mean((x @ w + b > 0).astype(int) == y)))
        history.append(np.append(w, b))
    return PerceptronResult(
        w,
        float(b),
        np.array(accuracy),
        np.array(mistakes),
        np.array(step_accuracy),
        np.array(history),
    )
