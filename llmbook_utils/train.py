"""The training loop every chapter uses, with exact resume from atomic checkpoints.

``train(model, train_data, cfg)`` runs AdamW (weight decay on matrices only) with a warmup +
cosine/linear learning-rate schedule, gradient clipping and accumulation, mixed precision on
CUDA, periodic evaluation, early stopping, callbacks and a progress bar. Each optimiser step
shows its order: autocast forward, backward, unscale, clip, step, schedule, zero.

Reproducibility: the data order of epoch ``e`` is a permutation seeded by ``(cfg.seed, e)``,
and a checkpoint stores the weights, the optimiser, every random-number generator and the
position in the data, so a run resumed from step k produces bit for bit the losses of a run
that was never interrupted.

Batches: a tuple/list batch calls ``model(*batch)``, a dict batch ``model(**batch)``; the model
returns ``(logits, loss)`` or an object with ``.loss``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from llmbook_utils.checkpoint import load_checkpoint, save_checkpoint
from llmbook_utils.device import get_device, set_seed

logger = logging.getLogger(__name__)

DECAYS = ("cosine", "linear", "constant")
# Fields that change the numbers a run produces (the others: where and how fast it runs).
RUN_FIELDS = ("max_steps", "batch_size", "lr", "min_lr", "warmup_steps", "decay",
              "weight_decay", "grad_clip", "grad_accum_steps", "precision", "seed")  # fmt: skip
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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
    precision: str = "auto"  # "auto" (CUDA: bf16, else fp16; CPU: fp32), "fp32", "bf16", "fp16"
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


class Callback:
    """Hooks into ``train``; subclass and override what you need (all are no-ops here)."""

    def on_train_begin(self, cfg: TrainConfig) -> None: ...

    def on_log(self, record: dict) -> None: ...  # {"step", "train_loss", "lr", "elapsed_s", ...}

    def on_eval(self, record: dict) -> None: ...  # {"step", "val_loss", "elapsed_s"}

    def on_train_end(self, history: History) -> None: ...


@dataclass
class History:
    """What ``train`` recorded: train-loss records every ``log_every`` steps, eval records."""

    records: list[dict] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def train_loss(self) -> list[float]:
        return [r["train_loss"] for r in self.records if "train_loss" in r]

    @property
    def val_loss(self) -> list[float]:
        return [r["val_loss"] for r in self.records if "val_loss" in r]

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per recorded step (train and eval columns merged)."""
        import pandas as pd

        return pd.DataFrame(self.records).groupby("step", sort=True).first()


class EpochSampler(Sampler[int]):
    """A random permutation seeded by ``(seed, epoch)``, started at position ``start``."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        self.n, self.start = n, start
        self.seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed))
        for chunk in perm[self.start :].split(1 << 16):  # no list of millions of Python ints
            yield from chunk.tolist()

    def __len__(self) -> int:
        return self.n - self.start


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def _precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: plain fp32)."""
    if name == "auto":
        if device.type != "cuda":
            return None  # CPUs without bf16 units run bf16 far slower than fp32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name == "fp16" and device.type != "cuda":
        raise ValueError(f"precision='fp16' needs a CUDA device, got {device}")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


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


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, dict):
        return {
            k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()
        }
    return [b.to(device, non_blocking=True) if torch.is_tensor(b) else b for b in batch]


def _forward(model: nn.Module, batch: Any) -> torch.Tensor:
    """Run the model on a batch and return its loss."""
    out = model(**batch) if isinstance(batch, dict) else model(*batch)
    loss = out[1] if isinstance(out, (tuple, list)) else getattr(out, "loss", None)
    if loss is None:
        raise ValueError("the model returned no loss: give it targets/labels in the batch")
    return loss


def _n_tokens(batch: Any) -> int:
    """Token ids in a batch (0 when its first tensor is not integer ids)."""
    first = batch.get("input_ids") if isinstance(batch, dict) else batch[0]
    ok = torch.is_tensor(first) and not first.dtype.is_floating_point
    return first.numel() if ok else 0


def _check_dataset(data: Any, name: str, batch_size: int | None) -> None:
    if isinstance(data, DataLoader) or not hasattr(data, "__getitem__"):
        raise ValueError(f"{name} must be a map-style Dataset (train() builds the DataLoader)")
    if len(data) == 0:
        raise ValueError(f"{name} is empty (len 0)")
    if batch_size is not None and len(data) < batch_size:
        raise ValueError(
            f"{name} has {len(data)} examples, fewer than batch_size={batch_size} with "
            "drop_last=True: no batch would be formed"
        )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    collate_fn: Callable | None = None,
) -> float:
    """Mean loss over ``cfg.eval_batches`` batches (a fixed random subset) or all of ``data``.

    The model is put in eval mode (no dropout) and restored to its previous mode afterwards.
    """
    _check_dataset(data, "eval_data", None)
    device, was_training = _device_of(model), model.training
    amp_dtype = _precision(cfg.precision, device)
    indices = range(len(data))
    if cfg.eval_batches is not None and cfg.eval_batches * cfg.batch_size < len(data):
        # The same spread-out subset at every evaluation, so the curve is comparable.
        perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))
        indices = perm[: cfg.eval_batches * cfg.batch_size].tolist()
    loader = DataLoader(
        data, batch_size=cfg.batch_size, sampler=indices, collate_fn=collate_fn,
        num_workers=cfg.num_workers, generator=torch.Generator(),
    )  # fmt: skip
    model.eval()
    total, count = torch.zeros((), device=device), 0
    for batch in loader:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            total += _forward(model, _to(batch, device)).float()
        count += 1
    model.train(was_training)
    return (total / count).item()


def train(
    model: nn.Module,
    train_data: Dataset,
    cfg: TrainConfig,
    eval_data: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    collate_fn: Callable | None = None,
    resume_from: str | os.PathLike | bool | None = None,
) -> History:
    """Train ``model`` on ``train_data`` for ``cfg.max_steps`` optimiser steps.

    Args:
        model: returns ``(logits, loss)`` (or an object with ``.loss``) for a batch.
        train_data: a map-style dataset; batches come from a seeded, resumable sampler.
        cfg: the run's configuration.
        eval_data: evaluated every ``cfg.eval_every`` steps and at the end.
        callbacks: ``Callback`` instances (e.g. ``viz.LiveLossPlot()``).
        collate_fn: turns a list of examples into a batch (default: torch's stacking).
        resume_from: a checkpoint directory to continue from, or ``True`` for
            ``cfg.checkpoint_dir`` when it holds one.

    Returns:
        The ``History`` of the whole run (a resumed run includes the records before the
        checkpoint).
    """
    from tqdm.auto import tqdm

    _check_dataset(train_data, "train_data", cfg.batch_size if cfg.drop_last else None)
    if cfg.early_stopping_patience is not None and eval_data is None:
        raise ValueError(
            f"early_stopping_patience={cfg.early_stopping_patience} needs eval_data to watch"
        )
    device = get_device() if cfg.device == "auto" else torch.device(cfg.device)
    amp_dtype = _precision(cfg.precision, device)
    model.to(device).train()
    optimizer = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    history = History()
    step, epoch, batches_done, best, bad_evals = 0, 0, 0, math.inf, 0

    if resume_from is True:
        if cfg.checkpoint_dir is None:
            raise ValueError("resume_from=True needs cfg.checkpoint_dir")
        found = (Path(cfg.checkpoint_dir) / "state.json").exists()
        resume_from = cfg.checkpoint_dir if found else None
    if resume_from:
        state = load_checkpoint(resume_from, model, optimizer, scaler, restore_rng=True)
        step, extra = state["step"], state["extra"]
        epoch, batches_done = extra["epoch"], extra["batches_done"]
        best, bad_evals = extra["best_val_loss"], extra["bad_evals"]
        history.records = extra["history"]
        logger.info("resumed from %s at step %d", resume_from, step)
        saved = {k: v for k, v in (state["train_config"] or {}).items() if k in RUN_FIELDS}
        now = {k: v for k, v in asdict(cfg).items() if k in RUN_FIELDS}
        if saved != now:
            logger.warning("resuming with a different config: %s, saved %s", now, saved)
    else:
        set_seed(cfg.seed)

    def batches() -> Iterator[Any]:
        """Micro-batches forever, epoch after epoch, from the saved data position on."""
        nonlocal epoch, batches_done
        while True:
            sampler = EpochSampler(len(train_data), cfg.seed, epoch, batches_done * cfg.batch_size)
            loader = DataLoader(
                train_data, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_fn,
                num_workers=cfg.num_workers, drop_last=cfg.drop_last,
                pin_memory=device.type == "cuda", generator=torch.Generator(),
            )  # fmt: skip
            for batch in loader:
                batches_done += 1
                yield batch
            epoch, batches_done = epoch + 1, 0

    def checkpoint() -> None:
        extra = {"epoch": epoch, "batches_done": batches_done, "best_val_loss": best,
                 "bad_evals": bad_evals, "history": history.records}  # fmt: skip
        save_checkpoint(cfg.checkpoint_dir, model, optimizer, step=step, train_config=cfg,
                        scaler=scaler, extra=extra)  # fmt: skip

    for cb in callbacks:
        cb.on_train_begin(cfg)
    show = cfg.progress and os.environ.get("LLMBOOK_STATIC") != "1"
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not show, desc="train")
    stream = batches()
    loss_sum, loss_count, tokens = torch.zeros((), device=device), 0, 0
    start = last_log = time.perf_counter()
    for g in optimizer.param_groups:
        g["lr"] = get_lr(step, cfg)
    while step < cfg.max_steps:
        for _ in range(cfg.grad_accum_steps):
            batch = _to(next(stream), device)
            tokens += _n_tokens(batch)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = _forward(model, batch)  # 1. forward (autocast)
            scaler.scale(loss / cfg.grad_accum_steps).backward()  # 2. backward
            loss_sum += loss.detach().float()
        loss_count += cfg.grad_accum_steps
        scaler.unscale_(optimizer)  # 3. unscale the fp16 gradients (no-op otherwise)
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)  # 4. clip
        scaler.step(optimizer)  # 5. step
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]
        step += 1
        for g in optimizer.param_groups:  # 6. schedule the next step's learning rate
            g["lr"] = get_lr(step, cfg)
        optimizer.zero_grad(set_to_none=True)  # 7. zero
        bar.update(1)

        if step % cfg.log_every == 0 or step == cfg.max_steps:
            now = time.perf_counter()
            record = {"step": step, "train_loss": (loss_sum / loss_count).item(), "lr": lr,
                      "elapsed_s": now - start}  # fmt: skip
            if tokens:
                record["tokens_per_s"] = tokens / (now - last_log)
            history.records.append(record)
            bar.set_postfix(loss=f"{record['train_loss']:.4f}", lr=f"{lr:.2e}")
            for cb in callbacks:
                cb.on_log(record)
            loss_sum.zero_()
            loss_count, tokens, last_log = 0, 0, time.perf_counter()

        stop, paused = False, time.perf_counter()
        eval_now = cfg.eval_every and step % cfg.eval_every == 0
        if eval_data is not None and (eval_now or step == cfg.max_steps):
            val_loss = evaluate(model, eval_data, cfg, collate_fn)
            record = {"step": step, "val_loss": val_loss, "elapsed_s": time.perf_counter() - start}
            history.records.append(record)
            for cb in callbacks:
                cb.on_eval(record)
            best, bad_evals = (val_loss, 0) if val_loss < best else (best, bad_evals + 1)
            patience = cfg.early_stopping_patience
            stop = patience is not None and bad_evals >= patience
        if cfg.checkpoint_dir is not None and (
            stop
            or step == cfg.max_steps
            or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
        ):
            checkpoint()
        last_log += time.perf_counter() - paused  # evaluation and saving are not training time
        if stop:
            logger.info("early stopping at step %d: best val_loss %.4f", step, best)
            history.stopped_early = True
            break
    bar.close()
    for cb in callbacks:
        cb.on_train_end(history)
    return history
