"""llmbook_utils.autograd against torch.autograd: same graphs, same gradients (float64)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmbook_utils.autograd import Tensor, cross_entropy

# Operations that both engines understand with the same code. Inputs are kept in ranges where
# every operation is smooth (log of a positive number, division by a number >= 1).
UNARY = [
    lambda a: a.tanh(),
    lambda a: a.sigmoid(),
    lambda a: a.relu(),
    lambda a: (a * 0.5).exp(),
    lambda a: (a * a + 1.0).log(),
    lambda a: a**2,
    lambda a: -a,
    lambda a: a.softmax(dim=-1) if a.ndim == 2 else a * 3.0,
]
BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (b * b + 1.0),
    lambda a, b: 2.0 - a * b + 1.5,
]


def random_graph(seed: int):
    """A random expression of 3 leaves (shapes (4, 3), (3,), (3, 2)) -> a scalar, as a function."""
    rng = np.random.default_rng(seed)
    program = [
        (int(rng.integers(2)), int(rng.integers(8)), int(rng.integers(5)), int(rng.integers(3)))
        for _ in range(int(rng.integers(4, 10)))
    ]
    leaves = [rng.normal(size=(4, 3)), rng.normal(size=(3,)), rng.normal(size=(3, 2))]

    def run(a, b, c):
        x, y = a + b, b  # x stays (4, 3); y (3,) broadcasts against it
        for kind, u, v, which in program:
            if kind == 0:
                x = UNARY[u](x)
            else:
                other = [y, x * 0.5, y.tanh()][which]
                x = BINARY[v](x, other)
        out = (x @ c).tanh()  # (4, 3) @ (3, 2) -> (4, 2)
        return (out.sum(dim=0) * out.amax(dim=1).sum()).sum() + out.logsumexp(dim=1).mean()

    return run, leaves


@pytest.mark.parametrize("seed", range(25))
def test_random_graphs_match_torch(seed):
    run, leaves = random_graph(seed)
    ours = [Tensor(value) for value in leaves]
    run(*ours).backward()
    theirs = [torch.tensor(value, dtype=torch.float64, requires_grad=True) for value in leaves]
    run(*theirs).backward()
    for a, b in zip(ours, theirs, strict=True):
        assert a.grad.shape == tuple(b.grad.shape)
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=0, atol=1e-10)


def test_value_matches_torch():
    run, leaves = random_graph(3)
    ours = run(*[Tensor(v) for v in leaves]).item()
    theirs = run(*[torch.tensor(v, dtype=torch.float64) for v in leaves]).item()
    assert abs(ours - theirs) < 1e-12


def test_reused_node_accumulates():
    """A node used twice receives the sum of both paths' gradients: d(x*x + x)/dx = 2x + 1."""
    x = Tensor(3.0)
    y = x * x + x
    y.backward()
    assert x.grad == pytest.approx(7.0)


def test_cross_entropy_matches_torch():
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(5, 4)) * 3, rng.integers(0, 4, size=5)
    ours = Tensor(logits)
    loss = cross_entropy(ours, targets)
    loss.backward()
    theirs = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(theirs, torch.tensor(targets))
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), abs=1e-12)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), atol=1e-12)


def test_logsumexp_no_overflow():
    x = Tensor(np.array([[1000.0, 1001.0, 1002.0]]))
    assert x.logsumexp(dim=1).item() == pytest.approx(
        torch.logsumexp(torch.tensor([[1000.0, 1001.0, 1002.0]], dtype=torch.float64), 1).item()
    )


def test_second_backward_does_not_double_intermediates():
    x = Tensor(2.0)
    y = (x * 3.0).tanh()
    y.backward()
    first = float(x.grad)
    x.zero_grad()
    y.backward()
    assert float(x.grad) == pytest.approx(first)


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        Tensor(np.ones((2, 2))).backward()
    with pytest.raises(ValueError, match="matmul"):
        Tensor(np.ones(3)) @ Tensor(np.ones((3, 2)))
    with pytest.raises(ValueError, match="targets"):
        cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 1, 2]))
