"""activation_checkpoint: identical loss and gradients to the plain GPT; the memory probes
agree with what torch saves and allocates."""

from __future__ import annotations

import torch

from llmbook_utils.activation_checkpoint import (
    CheckpointedGPT,
    peak_memory_bytes,
    saved_tensor_bytes,
)
from llmbook_utils.gpt import GPT, GPTConfig


def test_same_loss_and_gradients_less_saved():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=30, context_length=16, d_model=32, n_layers=3, n_heads=4,
                       dropout=0.1)  # fmt: skip
    model = GPT(config)
    x, y = torch.randint(0, 30, (4, 16)), torch.randint(0, 30, (4, 16))
    grads, losses = [], []
    for enabled in (False, True):
        torch.manual_seed(1)  # the same dropout masks
        model.zero_grad()
        _, loss = CheckpointedGPT(model, enabled)(x, y)
        loss.backward()
        losses.append(loss.item())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.manual_seed(1)
    assert model(x, y)[1].item() == losses[0]  # the wrapper's plain path is GPT.forward
    assert losses[0] == losses[1]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    plain = saved_tensor_bytes(lambda: CheckpointedGPT(model, False)(x, y))
    ckpt = saved_tensor_bytes(lambda: CheckpointedGPT(model, True)(x, y))
    assert ckpt < plain / 2


def test_saved_bytes_of_a_matmul():
    a = torch.randn(64, 32, requires_grad=True)
    b = torch.randn(32, 16, requires_grad=True)
    assert saved_tensor_bytes(lambda: a @ b) == a.nbytes + b.nbytes  # mm saves both inputs


def test_peak_memory_of_one_allocation():
    def fn():
        t = torch.empty(250_000)  # 1,000,000 bytes
        del t

    assert peak_memory_bytes(fn) == 1_000_000
