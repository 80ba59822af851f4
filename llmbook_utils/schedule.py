"""What a training run is: its configuration, its learning-rate schedule and its optimiser.

- ``TrainConfig``: every setting of a run, validated, saved with every checkpoint.
- ``get_lr(step, cfg)``: linear warmup, then cosine, linear or no decay; a pure function.
- ``make_optimizer(model, cfg)``: AdamW with weight decay on matrices only (Loshchilov and
  Hutter, 2019, https://arxiv.org/abs/1711.05101).

``llmbook_utils.train`` re-exports all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from llmbook_utils.precision import PRECISIONS

DECAYS = ("cosine", "linear", "constant")
# Fields that change the numbers a run produces (the others: where and how fast it runs).
RUN_FIELDS = ("max_steps", "batch_size", "lr", "min_lr", "warmup_steps", "decay",
              "weight_decay", "grad_clip", "grad_accum_steps", "precision", "seed")  # fmt: skip


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved with every checkpoint."""

    max_steps: int = 1000  # optimiser steps (each sees grad_accum_steps micro-batches)
    batch_size: int = 32  # examples per micro-batch
    lr: float = 3e-4  # peak learning rate, reached at the end of warmup
    min_lr: float = 0.0  # learning rate at the end of the decay
    warmup_steps: int = 0  # linear warmup from lr / warmup_steps to lr
    decay: str = "cosine"  # after warmup: "cosine", "linear" or "constant"
    weight_decay: float = 0.1  # AdamW decay, applied to >= 2-D parameters only
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW moment coefficients
    grad_clip: float | None = 1.0  # max global gradient norm; None disables clipping
    grad_accum_steps: int = 1  # micro-batches summed into one optimiser step
    eval_every: int = 0  # evaluate every this many steps (0: only at the end)
    eval_batches: int | None = 20  # batches per evaluation (None: the whole eval set)
    log_every: int = 10  # steps between train-loss records (and callbacks' on_log)
    early_stopping_patience: int | None = None  # stop after this many evals without improvement
    # "auto": bf16 on CUDA GPUs with compute capability >= 8, fp16 + a gradient scaler on older
    # ones (T4), fp32 on CPU and MPS; or "fp32", "bf16", "fp16" (llmbook_utils.precision).
    precision: str = "auto"
    seed: int = 0  # seeds weights-independent randomness: data order, dropout
    device: str = "auto"  # "auto" (cuda > mps > cpu) or a torch device string
    num_workers: int = 0  # DataLoader worker processes
    drop_last: bool = True  # drop the last incomplete batch of each epoch
    checkpoint_dir: str | None = None  # where train() saves its checkpoint (None: no saving)
    checkpoint_every: int = 0  # steps between checkpoints (0: only at the end)
    progress: bool = True  # tqdm progress bar (never in the static site build)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        for name in ("max_steps", "batch_size", "grad_accum_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "num_workers", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if not 0.0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr={self.min_lr} <= lr={self.lr}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} > max_steps={self.max_steps}")
        if self.decay not in DECAYS:
            raise ValueError(f"decay={self.decay!r} is not one of {DECAYS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not one of {PRECISIONS}")
        if self.weight_decay < 0 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"weight_decay={self.weight_decay} >= 0, betas={self.betas} in [0, 1)")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip={self.grad_clip} must be > 0 (or None to disable)")
        if self.eval_batches is not None and self.eval_batches < 1:
            raise ValueError(f"eval_batches={self.eval_batches} must be >= 1 (or None for all)")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"early_stopping_patience={self.early_stopping_patience} must be >= 1")


def get_lr(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimiser step ``step`` (0-based): a pure function.

    Warmup: ``lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``. Then, with
    ``p = (step - warmup_steps) / (max_steps - warmup_steps)`` clipped to [0, 1]:
    cosine ``min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2``, linear
    ``lr - (lr - min_lr) * p``, constant ``lr``. So ``get_lr(max_steps) == min_lr``.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return cfg.lr
    p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.decay == "linear":
        return cfg.lr - (cfg.lr - cfg.min_lr) * p
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on >= 2-D parameters (matrices, embeddings) only.

    Biases and LayerNorm weights are not decayed: shrinking them towards zero is no useful
    prior. Uses torch's fused kernel where available (much faster, also on the CPU).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=get_lr(0, cfg), betas=cfg.betas, fused=True)
    except (RuntimeError, TypeError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(groups, lr=get_lr(0, cfg), betas=cfg.betas, foreach=True)
