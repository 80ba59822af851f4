"""llmbook_utils.optim against torch.optim: the same 100 steps in float64, to 1e-12."""

import numpy as np
import pytest
import torch

from llmbook_utils import optim
from llmbook_utils.autograd import Tensor

CASES = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "betas": (0.85, 0.95), "weight_decay": 0.3}),
]


def loss_fn(w1, b1, w2, x, y):
    """A small two-layer network's mean squared error: a non-convex loss with real gradients."""
    return ((torch.tanh(x @ w1 + b1) @ w2 - y) ** 2).mean()


def make_problem(seed):
    gen = torch.Generator().manual_seed(seed)
    x, y = (
        torch.randn(16, 3, generator=gen, dtype=torch.float64),
        torch.randn(16, 2, generator=gen, dtype=torch.float64),
    )
    shapes = [(3, 5), (5,), (5, 2)]
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    return x, y, start


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_matches_torch_for_100_steps(name, kwargs):
    x, y, start = make_problem(0)
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    our_opt = getattr(optim, name)(ours, **kwargs)
    their_opt = getattr(torch.optim, name)(theirs, **kwargs, foreach=False)
    for _ in range(100):
        for params, opt in ((ours, our_opt), (theirs, their_opt)):
            opt.zero_grad()
            loss_fn(*params, x, y).backward()
            opt.step()
        for a, b in zip(ours, theirs, strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-12), (a - b).abs().max()
    assert not torch.equal(ours[0], start[0])  # it moved


def test_works_on_autograd_tensors():
    """The same optimiser drives llmbook_utils.autograd.Tensor parameters, like torch's."""
    start = np.array([-1.0, 1.5])
    ours = Tensor(start.copy())
    theirs = torch.tensor(start, requires_grad=True)
    our_opt, their_opt = optim.Adam([ours], lr=0.05), torch.optim.Adam([theirs], lr=0.05)
    target = np.array([0.5, -0.25])
    for _ in range(100):
        our_opt.zero_grad()
        ((ours - target) ** 2).sum().backward()
        our_opt.step()
        their_opt.zero_grad()
        ((theirs - torch.tensor(target)) ** 2).sum().backward()
        their_opt.step()
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=0, atol=1e-12)


def test_bad_hyperparameters():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="lr=-1"):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError, match="momentum=1.5"):
        optim.SGD(p, lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty"):
        optim.AdamW([])
