"""ddp_train: two torchrun processes compute what one process computes on the global batch.

The references are plain single-process loops written here: one batch of the whole global
batch, ``loss.backward()``, clip, AdamW step. The distributed runs use float64, so that the
comparison sees the algorithm (data split, gradient averaging, accumulation) and not the
order of floating-point sums.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from llmbook_utils.checkpoint import load_checkpoint
from llmbook_utils.data import LMBlockDataset
from llmbook_utils.ddp_train import (
    DDPConfig,
    cli_args,
    launch,
    load_tokens,
    model_config,
    parse_args,
    train_step,
)
from llmbook_utils.device import set_seed
from llmbook_utils.gpt import GPT, GPTConfig


def reference_run(cfg: DDPConfig, global_batch: int) -> GPT:
    """One process, one batch of ``global_batch`` windows per step, no accumulation."""
    tokens = load_tokens(cfg)
    set_seed(cfg.seed)
    model = GPT(model_config(cfg, tokens)).double()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95),
                            weight_decay=cfg.weight_decay)  # fmt: skip
    data = LMBlockDataset(tokens, cfg.context, stride=cfg.context)
    sampler = DistributedSampler(data, num_replicas=1, rank=0, seed=cfg.seed, drop_last=True)
    order = list(sampler)  # the permutation every rank slices
    assert cfg.steps * global_batch <= len(order), "the reference stays in the first epoch"
    for step in range(cfg.steps):
        idx = order[step * global_batch : (step + 1) * global_batch]
        x = torch.stack([data[i][0] for i in idx])  # (global batch, T)
        y = torch.stack([data[i][1] for i in idx])
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
    return model


def load_trained(out) -> GPT:
    state = load_checkpoint(out / "model")
    model = GPT(GPTConfig(**state["model_config"])).double()
    load_checkpoint(out / "model", model)
    return model


def max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_equal_one_process_on_the_global_batch(tmp_path, strategy):
    # 2 ranks x 2 micro-batches (no_sync on the first) x 4 windows = a global batch of 16.
    cfg = DDPConfig(steps=4, batch_size=4, grad_accum=2, context=16, d_model=16, n_layers=2,
                    n_heads=2, lr=1e-2, strategy=strategy, dtype="float64",
                    synthetic_tokens=4_000, out=str(tmp_path))  # fmt: skip
    metrics = launch(cfg, nproc=2, timeout=300)
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo"
    assert metrics["global_batch"] == 16
    diff = max_diff(load_trained(tmp_path), reference_run(cfg, 16))
    assert diff < 1e-6, diff
    assert not list(tmp_path.glob(".*tmp*")), "an atomic write left a temporary file"


def test_gradient_accumulation_4x8_equals_one_batch_of_32():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=40, context_length=16, d_model=32, n_layers=2, n_heads=4)
    x = torch.randint(0, 40, (32, 16))
    y = torch.randint(0, 40, (32, 16))
    models, opts = [], []
    for _ in range(2):
        set_seed(1)
        models.append(GPT(config))
        opts.append(torch.optim.AdamW(models[-1].parameters(), lr=1e-3))
    micro = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    train_step(models[0], opts[0], micro, grad_clip=0.0)
    _, loss = models[1](x, y)  # the reference: torch on the whole batch
    loss.backward()
    opts[1].step()
    assert max_diff(models[0], models[1]) < 1e-6


def test_accumulation_without_the_1_over_a_scales_the_gradient():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    torch.nn.functional.mse_loss(model(x), y).backward()
    reference = model.weight.grad.clone()
    model.zero_grad()
    for i in range(0, 32, 8):  # the pitfall: summing micro-batch means
        torch.nn.functional.mse_loss(model(x[i : i + 8]), y[i : i + 8]).backward()
    torch.testing.assert_close(model.weight.grad, 4 * reference)


def test_cli_round_trip_and_validation():
    cfg = DDPConfig(steps=3, strategy="fsdp", out="x", lr=0.5)
    assert parse_args(cli_args(cfg)) == cfg
    with pytest.raises(ValueError, match="strategy"):
        DDPConfig(strategy="zero")
    with pytest.raises(ValueError, match="grad_accum=0"):
        DDPConfig(grad_accum=0)
    with pytest.raises(ValueError, match="micro_batches"):
        train_step(torch.nn.Linear(1, 1), None, [])
