"""The training loop every chapter uses, with exact resume from atomic checkpoints.

``train(model, train_data, cfg)`` runs AdamW (weight decay on matrices only) with a warmup +
cosine/linear learning-rate schedule, gradient clipping and accumulation, mixed precision
(bf16, or fp16 with a gradient scaler on GPUs without bf16: ``llmbook_utils.precision``),
periodic evaluation, early stopping, callbacks and a progress bar. Each optimiser step shows its
order: autocast forward, backward, unscale, clip, step, schedule, zero.

Reproducibility: the data order of epoch ``e`` is a permutation seeded by ``(cfg.seed, e)``,
and a checkpoint stores the weights, the optimiser, every random-number generator and the
position in the data, so a run resumed from step k produces bit for bit the losses and the
weights of a run that was never interrupted. To stop a run on purpose and continue it later::

    cfg = TrainConfig(max_steps=1000, checkpoint_dir="ckpt")
    train(model, data, cfg, stop_at=500)         # steps 1-500, then saves ckpt and returns
    train(model2, data, cfg, resume_from=True)   # steps 501-1000, from ckpt

Batches: a tuple/list batch calls ``model(*batch)``, a dict batch ``model(**batch)``; the model
returns ``(logits, loss)`` or an object with ``.loss``.

The pieces live in their own files and are re-exported here: ``TrainConfig``, ``get_lr`` and
``make_optimizer`` (``schedule``), ``Callback`` and ``History`` (``callbacks``),
``EpochSampler`` (``batching``), ``save_checkpoint`` and ``load_checkpoint`` (``checkpoint``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from llmbook_utils.batching import EpochSampler
from llmbook_utils.callbacks import Callback, History
from llmbook_utils.checkpoint import load_checkpoint, save_checkpoint
from llmbook_utils.device import get_device, set_seed
from llmbook_utils.precision import NAMES, autocast_dtype, make_grad_scaler
from llmbook_utils.schedule import RUN_FIELDS, TrainConfig, get_lr, make_optimizer

__all__ = [
    "Callback",
    "EpochSampler",
    "History",
    "TrainConfig",
    "evaluate",
    "get_lr",
    "load_checkpoint",
    "make_optimizer",
    "save_checkpoint",
    "train",
]

logger = logging.getLogger(__name__)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


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
    amp_dtype: torch.dtype | None | str = "from cfg",
) -> float:
    """Mean loss over ``cfg.eval_batches`` batches (a fixed random subset) or all of ``data``.

    The model is put in eval mode (no dropout) and restored to its previous mode afterwards.

    Args:
        model: returns ``(logits, loss)`` (or an object with ``.loss``) for a batch.
        data: a map-style dataset.
        cfg: batch size, ``eval_batches``, precision and seed of the subset.
        collate_fn: turns a list of examples into a batch.
        amp_dtype: the autocast dtype; by default ``autocast_dtype(cfg.precision, device)``.
    """
    _check_dataset(data, "eval_data", None)
    device, was_training = _device_of(model), model.training
    if amp_dtype == "from cfg":
        amp_dtype = autocast_dtype(cfg.precision, device)
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
    stop_at: int | None = None,
    batch_sampler: Any = None,
) -> History:
    """Train ``model`` on ``train_data`` for ``cfg.max_steps`` optimiser steps.

    Args:
        model: returns ``(logits, loss)`` (or an object with ``.loss``) for a batch.
        train_data: a map-style dataset; batches come from a seeded, resumable sampler.
        cfg: the run's configuration.
        eval_data: evaluated every ``cfg.eval_every`` steps and at the end.
        callbacks: ``Callback`` instances (e.g. ``live.LiveLossPlot()``).
        collate_fn: turns a list of examples into a batch (default: torch's stacking).
        resume_from: a checkpoint directory to continue from, or ``True`` for
            ``cfg.checkpoint_dir`` when it holds one (and a fresh start when it does not).
        stop_at: stop after this optimiser step, as if the run were interrupted there, and
            save a checkpoint when ``cfg.checkpoint_dir`` is set. The schedule still runs to
            ``cfg.max_steps``, so ``train(..., resume_from=True)`` with the same ``cfg``
            continues the run exactly.
        batch_sampler: batches of indices from a sampler with ``set_epoch(e)``, such as
            ``batching.LengthBucketSampler`` (similar-length examples in a batch, less
            padding), instead of ``cfg.batch_size`` random examples. Its batches of epoch ``e``
            must depend only on ``e``, so that a resumed run continues at the same batch.

    Returns:
        The ``History`` of the whole run (a resumed run includes the records before the
        checkpoint).
    """
    from tqdm.auto import tqdm

    _check_dataset(train_data, "train_data", cfg.batch_size if cfg.drop_last else None)
    if batch_sampler is not None and not callable(getattr(batch_sampler, "set_epoch", None)):
        raise ValueError(
            f"batch_sampler={type(batch_sampler).__name__} needs a set_epoch(epoch) method, "
            "like batching.LengthBucketSampler"
        )
    if cfg.early_stopping_patience is not None and eval_data is None:
        raise ValueError(
            f"early_stopping_patience={cfg.early_stopping_patience} needs eval_data to watch"
        )
    if stop_at is not None and not 1 <= stop_at <= cfg.max_steps:
        raise ValueError(f"stop_at={stop_at} must be in [1, max_steps={cfg.max_steps}]")
    end = cfg.max_steps if stop_at is None else stop_at
    device = get_device() if cfg.device == "auto" else torch.device(cfg.device)
    amp_dtype = autocast_dtype(cfg.precision, device)
    model.to(device).train()
    optimizer = make_optimizer(model, cfg)
    scaler = make_grad_scaler(amp_dtype, device)  # enabled for fp16 only
    history = History(precision=NAMES[amp_dtype])
    step, epoch, batches_done, best, bad_evals = 0, 0, 0, math.inf, 0
    loss_sum, loss_count = torch.zeros((), device=device), 0  # since the last train-loss record

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
        loss_sum.fill_(extra.get("loss_sum", 0.0))  # a float32 value: exact through JSON
        loss_count = extra.get("loss_count", 0)
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
        common = dict(collate_fn=collate_fn, num_workers=cfg.num_workers,
                      pin_memory=device.type == "cuda", generator=torch.Generator())  # fmt: skip
        while True:
            if batch_sampler is not None:
                batch_sampler.set_epoch(epoch)
                remaining = list(batch_sampler)[batches_done:]  # after a resume: the rest
                loader = DataLoader(train_data, batch_sampler=remaining, **common)
            else:
                start = batches_done * cfg.batch_size
                sampler = EpochSampler(len(train_data), cfg.seed, epoch, start)
                loader = DataLoader(train_data, batch_size=cfg.batch_size, sampler=sampler,
                                    drop_last=cfg.drop_last, **common)  # fmt: skip
            for batch in loader:
                batches_done += 1
                yield batch
            epoch, batches_done = epoch + 1, 0

    def checkpoint() -> None:
        extra = {"epoch": epoch, "batches_done": batches_done, "best_val_loss": best,
                 "bad_evals": bad_evals, "history": history.records,
                 "loss_sum": loss_sum.item(), "loss_count": loss_count}  # fmt: skip
        save_checkpoint(cfg.checkpoint_dir, model, optimizer, step=step, train_config=cfg,
                        scaler=scaler, extra=extra)  # fmt: skip

    for cb in callbacks:
        cb.on_train_begin(cfg)
    show = cfg.progress and os.environ.get("LLMBOOK_STATIC") != "1"
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not show, desc="train")
    stream = batches()
    tokens = 0
    start = last_log = time.perf_counter()
    for g in optimizer.param_groups:
        g["lr"] = get_lr(step, cfg)
    while step < end:
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
            val_loss = evaluate(model, eval_data, cfg, collate_fn, amp_dtype)
            record = {"step": step, "val_loss": val_loss, "elapsed_s": time.perf_counter() - start}
            history.records.append(record)
            for cb in callbacks:
                cb.on_eval(record)
            best, bad_evals = (val_loss, 0) if val_loss < best else (best, bad_evals + 1)
            patience = cfg.early_stopping_patience
            stop = patience is not None and bad_evals >= patience
        if cfg.checkpoint_dir is not None and (
            stop or step == end or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
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
