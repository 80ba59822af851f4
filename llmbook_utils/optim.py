"""Gradient-descent optimisers written from scratch (chapter 2): SGD, momentum, Adam, AdamW.

Each class keeps a list of parameters and, at ``step()``, moves every parameter against its
gradient by the update rule of chapter 2. The rules follow PyTorch's conventions exactly (for
example, SGD's momentum buffer is a running *sum* ``mu = beta mu + g`` and not an average, and
the first step copies the gradient into it), so that with the same hyperparameters each optimiser
takes the same steps as its counterpart in ``torch.optim``; ``tests/test_optim.py`` checks that
for 100 steps in float64.

A parameter is anything with an array in ``.data`` and its gradient in ``.grad`` that supports
``+ - * /`` and ``** 0.5``: a ``torch.Tensor`` (``requires_grad=True``) or a
``llmbook_utils.autograd.Tensor``. Updates are written in place into ``.data``.

Notation (book/notation.md, "Optimisation"): g the gradient, eta the learning rate, lambda the
weight decay, beta SGD's momentum coefficient and mu its momentum buffer, beta1 and beta2 Adam's
averaging coefficients, mu and nu Adam's running averages of the gradient and of its square.

Papers: Polyak (1964) for momentum; Kingma and Ba (2015), https://arxiv.org/abs/1412.6980, for
Adam; Loshchilov and Hutter (2019), https://arxiv.org/abs/1711.05101, for AdamW.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _copy(array: Any) -> Any:
    """A new array with the same values (``clone`` for torch, ``copy`` for NumPy)."""
    return array.clone() if hasattr(array, "clone") else array.copy()


class Optimizer:
    """Base class: holds the parameters, one state dict per parameter, and the step count.

    Args:
        params: the parameters to optimise (each with ``.data`` and ``.grad``).
        lr: the learning rate eta, > 0.
    """

    def __init__(self, params: Iterable[Any], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimiser got an empty list of parameters")
        if not lr > 0:
            raise ValueError(f"lr={lr} must be positive")
        self.lr = lr
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self.steps = 0  # number of step() calls so far, t in the formulas

    def zero_grad(self) -> None:
        """Set every gradient to zero (``None`` for torch tensors, as ``torch.optim`` does)."""
        for param in self.params:
            if hasattr(param, "zero_grad"):  # llmbook_utils.autograd.Tensor
                param.zero_grad()
            else:
                param.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        self.steps += 1
        for param, state in zip(self.params, self.state, strict=True):
            if param.grad is not None:
                param.data -= self.update(param.data, param.grad, state)

    def update(self, theta: Any, grad: Any, state: dict[str, Any]) -> Any:
        """Return the amount to subtract from ``theta`` given its gradient ``grad``."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and weight decay.

    Without momentum: theta <- theta - eta g, with g = dL/dtheta + lambda theta.
    With momentum beta (PyTorch's convention): mu <- beta mu + (1 - dampening) g (mu = g on the
    first step), then theta <- theta - eta mu; Nesterov uses g + beta mu in place of mu.

    Args:
        params: the parameters.
        lr: learning rate eta.
        momentum: momentum coefficient beta in [0, 1).
        dampening: scales the new gradient in the momentum buffer, in [0, 1).
        weight_decay: lambda >= 0, added to the gradient as lambda theta (L2 regularisation).
        nesterov: use Nesterov's look-ahead form (needs momentum > 0 and no dampening).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        *,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        if not 0.0 <= dampening < 1.0:
            raise ValueError(f"dampening={dampening} must be in [0, 1)")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError(
                f"nesterov needs momentum > 0 and dampening 0, got momentum={momentum}, "
                f"dampening={dampening}"
            )
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def update(self, theta: Any, grad: Any, state: dict[str, Any]) -> Any:
        if self.weight_decay:
            grad = grad + self.weight_decay * theta  # the gradient of (lambda / 2) ||theta||^2
        if self.momentum:
            if "mu" not in state:
                state["mu"] = _copy(grad)  # mu_1 = g_1
            else:
                state["mu"] = self.momentum * state["mu"] + (1 - self.dampening) * grad
            mu = state["mu"]
            grad = grad + self.momentum * mu if self.nesterov else mu
        return self.lr * grad


class Adam(Optimizer):
    """Adam: steps scaled per coordinate by running averages of the gradient and its square.

    mu <- beta1 mu + (1 - beta1) g,  nu <- beta2 nu + (1 - beta2) g * g,
    theta <- theta - eta (mu / (1 - beta1^t)) / (sqrt(nu / (1 - beta2^t)) + eps).

    Weight decay here is PyTorch's ``Adam(weight_decay=...)``: lambda theta added to the gradient
    *before* the averages, so it is rescaled with it. ``AdamW`` decouples it.

    Args:
        params: the parameters.
        lr: learning rate eta.
        betas: (beta1, beta2), each in [0, 1).
        eps: epsilon > 0 added to the denominator.
        weight_decay: lambda >= 0.
    """

    decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if not all(0.0 <= beta < 1.0 for beta in betas) or len(betas) != 2:
            raise ValueError(f"betas={betas} must be two numbers in [0, 1)")
        if not eps > 0:
            raise ValueError(f"eps={eps} must be positive")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def update(self, theta: Any, grad: Any, state: dict[str, Any]) -> Any:
        beta1, beta2 = self.betas
        t = self.steps
        decay = 0.0
        if self.weight_decay and self.decoupled:
            decay = self.lr * self.weight_decay * theta  # AdamW: shrink theta directly
        elif self.weight_decay:
            grad = grad + self.weight_decay * theta  # Adam: L2 term inside the gradient
        if not state:
            state["mu"], state["nu"] = 0 * grad, 0 * grad
        state["mu"] = state["mu"] + (1 - beta1) * (grad - state["mu"])  # = beta1 mu + (1-beta1) g
        state["nu"] = beta2 * state["nu"] + (1 - beta2) * grad * grad
        step_size = self.lr / (1 - beta1**t)  # bias correction of mu folded into eta
        denominator = state["nu"] ** 0.5 / (1 - beta2**t) ** 0.5 + self.eps
        # theta - decay - step is computed as theta - (decay + step); the rounding differs from
        # PyTorch's two in-place updates only in the last bit.
        return decay + step_size * state["mu"] / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019).

    Every step first shrinks theta <- theta (1 - eta lambda), then takes Adam's step without any
    decay in the gradient, so the decay is not divided by sqrt(nu). Same arguments as
    ``Adam``; ``weight_decay`` defaults to 0.01 as in ``torch.optim.AdamW``.
    """

    decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)
