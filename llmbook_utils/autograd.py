"""A small reverse-mode automatic-differentiation engine on NumPy arrays (chapter 2).

``Tensor`` wraps a float64 NumPy array (a 0-d array for a scalar) and records, for every
operation, the tensors it came from and a function that sends the output's gradient back to
them. ``backward()`` walks that graph once in reverse topological order, applying the chain rule
at every node. It is micrograd's idea (Karpathy, 2020) extended from scalars to arrays with
broadcasting, and its method names follow PyTorch's (``sum(dim, keepdim)``, ``relu()``, ``@``),
so one expression runs on both and the gradients can be compared with ``torch.autograd``.

Every backward rule below is the derivative worked out in chapter 2; for an output ``out`` of
an operation, ``out.grad`` holds dL/d(out) when its rule runs.

Shapes: a gradient always has the shape of its tensor's data. Broadcasting in the forward pass
is undone in the backward pass by summing over the broadcast axes (``_unbroadcast``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Union

import numpy as np

ArrayLike = Union["Tensor", np.ndarray, float, int]


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, to get ``shape`` back."""
    while grad.ndim > len(shape):  # leading axes added by broadcasting
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):  # axes of size 1 stretched by broadcasting
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """A float64 array that remembers how it was computed, for reverse-mode differentiation.

    Args:
        data: a number or an array; stored as a float64 NumPy array.
        parents: the tensors this one was computed from (empty for a leaf).
        op: name of the operation that made it, for display.

    Attributes:
        data: the value, a float64 ``np.ndarray`` (0-d for a scalar).
        grad: dL/d(data) after ``backward()``, same shape as ``data``; zeros before.
    """

    def __init__(self, data: ArrayLike, parents: tuple[Tensor, ...] = (), op: str = "") -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data = np.array(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)
        self._parents = parents
        self._op = op
        self._backward: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ basics

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        return float(self.data.item())

    def numpy(self) -> np.ndarray:
        return self.data

    def __repr__(self) -> str:
        op = f", op={self._op!r}" if self._op else ""
        return f"Tensor({self.data!r}{op})"

    def zero_grad(self) -> None:
        self.grad = np.zeros_like(self.data)

    @staticmethod
    def _lift(other: ArrayLike) -> Tensor:
        """Wrap a constant so it can take part in an operation (its gradient is discarded)."""
        return other if isinstance(other, Tensor) else Tensor(other)

    # ------------------------------------------------------------------ arithmetic

    def __add__(self, other: ArrayLike) -> Tensor:
        other = self._lift(other)
        out = Tensor(self.data + other.data, (self, other), "+")

        def backward() -> None:  # d(a + b)/da = d(a + b)/db = 1
            self.grad += _unbroadcast(out.grad, self.shape)
            other.grad += _unbroadcast(out.grad, other.shape)

        out._backward = backward
        return out

    def __mul__(self, other: ArrayLike) -> Tensor:
        other = self._lift(other)
        out = Tensor(self.data * other.data, (self, other), "*")

        def backward() -> None:  # d(ab)/da = b, d(ab)/db = a
            self.grad += _unbroadcast(out.grad * other.data, self.shape)
            other.grad += _unbroadcast(out.grad * self.data, other.shape)

        out._backward = backward
        return out

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor):
            raise ValueError("only constant exponents are supported: use exp(b * log(a))")
        out = Tensor(self.data**exponent, (self,), f"**{exponent}")

        def backward() -> None:  # d(a^k)/da = k a^(k-1)
            self.grad += out.grad * exponent * self.data ** (exponent - 1)

        out._backward = backward
        return out

    def __matmul__(self, other: ArrayLike) -> Tensor:
        other = self._lift(other)
        if self.ndim != 2 or other.ndim != 2:
            raise ValueError(f"matmul needs two matrices, got shapes {self.shape} @ {other.shape}")
        out = Tensor(self.data @ other.data, (self, other), "@")  # (n, k) @ (k, m) -> (n, m)

        def backward() -> None:  # dL/dA = dL/dC B^T, dL/dB = A^T dL/dC
            self.grad += out.grad @ other.data.T
            other.grad += self.data.T @ out.grad

        out._backward = backward
        return out

    def __neg__(self) -> Tensor:
        return self * -1.0

    def __sub__(self, other: ArrayLike) -> Tensor:
        return self + (-self._lift(other))

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return self * self._lift(other) ** -1.0

    def __radd__(self, other: ArrayLike) -> Tensor:
        return self + other

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return self * other

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return self._lift(other) - self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return self._lift(other) / self

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return self._lift(other) @ self

    # ------------------------------------------------------------------ element-wise functions

    def _unary(self, value: np.ndarray, local_grad: np.ndarray, op: str) -> Tensor:
        """An element-wise function with derivative ``local_grad`` (same shape as the data)."""
        out = Tensor(value, (self,), op)

        def backward() -> None:  # chain rule: dL/dx = dL/dy * dy/dx
            self.grad += out.grad * local_grad

        out._backward = backward
        return out

    def exp(self) -> Tensor:
        value = np.exp(self.data)
        return self._unary(value, value, "exp")  # (e^x)' = e^x

    def log(self) -> Tensor:
        return self._unary(np.log(self.data), 1.0 / self.data, "log")  # (ln x)' = 1/x

    def tanh(self) -> Tensor:
        value = np.tanh(self.data)
        return self._unary(value, 1.0 - value**2, "tanh")  # tanh' = 1 - tanh^2

    def sigmoid(self) -> Tensor:
        value = 0.5 * (1.0 + np.tanh(0.5 * self.data))  # = 1/(1 + e^-x), without overflow
        return self._unary(value, value * (1.0 - value), "sigmoid")  # s' = s (1 - s)

    def relu(self) -> Tensor:
        positive = self.data > 0
        return self._unary(np.where(positive, self.data, 0.0), positive * 1.0, "relu")

    # ------------------------------------------------------------------ shapes and reductions

    def sum(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        out = Tensor(self.data.sum(axis=dim, keepdims=keepdim), (self,), "sum")

        def backward() -> None:  # every summand receives the sum's gradient
            grad = out.grad
            if dim is not None and not keepdim:
                grad = np.expand_dims(grad, dim)
            self.grad += np.broadcast_to(grad, self.shape)

        out._backward = backward
        return out

    def mean(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
        count = self.data.size // np.asarray(self.data.sum(axis=dim)).size  # summands per entry
        return self.sum(dim, keepdim) / count

    def amax(self, dim: int, keepdim: bool = False) -> Tensor:
        """Maximum along ``dim`` (torch.amax); the gradient goes to the largest entry (no ties)."""
        index = self.data.argmax(axis=dim)
        out = Tensor(self.data.max(axis=dim, keepdims=keepdim), (self,), "max")

        def backward() -> None:
            grad = out.grad if keepdim else np.expand_dims(out.grad, dim)
            one_hot = np.expand_dims(index, dim) == np.arange(self.shape[dim]).reshape(
                [-1 if axis == dim % self.ndim else 1 for axis in range(self.ndim)]
            )
            self.grad += grad * one_hot

        out._backward = backward
        return out

    def reshape(self, *shape: int) -> Tensor:
        out = Tensor(self.data.reshape(*shape), (self,), "reshape")

        def backward() -> None:
            self.grad += out.grad.reshape(self.shape)

        out._backward = backward
        return out

    @property
    def T(self) -> Tensor:  # noqa: N802 - PyTorch's name
        out = Tensor(self.data.T, (self,), "T")

        def backward() -> None:
            self.grad += out.grad.T

        out._backward = backward
        return out

    def logsumexp(self, dim: int, keepdim: bool = False) -> Tensor:
        """log(sum(exp(x))) along ``dim``, computed as c + log(sum(exp(x - c))) with c = max."""
        shift = Tensor(self.data.max(axis=dim, keepdims=True))  # a constant: no gradient needed
        out = (self - shift).exp().sum(dim, keepdim=True).log() + shift
        return out if keepdim else out.reshape(*np.squeeze(out.data, axis=dim).shape)

    def log_softmax(self, dim: int) -> Tensor:
        return self - self.logsumexp(dim, keepdim=True)

    def softmax(self, dim: int) -> Tensor:
        return self.log_softmax(dim).exp()

    # ------------------------------------------------------------------ backpropagation

    def backward(self, grad: np.ndarray | None = None) -> None:
        """Fill ``.grad`` of every tensor this one depends on with dL/d(tensor), L = self.

        Gradients accumulate (``+=``) as in PyTorch: call ``zero_grad()`` between steps.

        Args:
            grad: dL/d(self); defaults to 1 for a one-element tensor.
        """
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() needs a gradient for a tensor of shape {self.shape}")
            grad = np.ones_like(self.data)
        order: list[Tensor] = []  # parents before children
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:  # iterative depth-first search: deep graphs do not hit the recursion limit
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((parent, False) for parent in node._parents)
        for node in order:  # intermediate gradients start from zero on every call
            if node._parents:
                node.grad = np.zeros_like(node.data)
        self.grad = self.grad + np.asarray(grad, dtype=np.float64)
        for node in reversed(order):  # each node's gradient is complete before it is passed on
            node._backward()


def cross_entropy(logits: Tensor, targets: np.ndarray) -> Tensor:
    """Mean cross-entropy of integer ``targets`` (N,) under ``logits`` (N, K), like PyTorch's."""
    targets = np.asarray(targets)
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(
            f"logits (N, K) and targets (N,) expected, got {logits.shape}, {targets.shape}"
        )
    one_hot = np.eye(logits.shape[1])[targets]  # (N, K)
    return -(logits.log_softmax(dim=1) * one_hot).sum() / logits.shape[0]


def parameters_zero_grad(parameters: Iterable[Tensor]) -> None:
    """Reset the gradients of ``parameters`` to zero."""
    for parameter in parameters:
        parameter.zero_grad()
