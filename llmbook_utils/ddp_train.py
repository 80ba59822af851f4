"""Data-parallel training of the book's GPT, launched with ``torchrun``.

One machine, two processes, on the CPU (gloo) or on two GPUs (nccl)::

    torchrun --nproc_per_node=2 -m llmbook_utils.ddp_train --steps 100 --out runs/ddp

Several machines: the same command on each, with the number of machines and a rendezvous
address that all of them reach (here 2 machines with 8 GPUs each)::

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d \\
        --rdzv-endpoint=HOST_OF_NODE_0:29500 --rdzv-id=job42 \\
        -m llmbook_utils.ddp_train --steps 100 --out runs/ddp

Without ``torchrun`` (``python -m llmbook_utils.ddp_train``) it trains in one process.

Each of the ``W`` processes (ranks) holds the whole model (``--strategy ddp``,
``DistributedDataParallel``; Li et al., 2020, https://arxiv.org/abs/2006.15704) or a 1/W shard
of every parameter, gradient and optimiser state (``--strategy fsdp``, PyTorch's
``fully_shard``: ZeRO stage 3). The things that make W processes compute exactly what one
process would compute on the global batch:

- **the same initial weights**: every rank seeds identically (DDP also broadcasts rank 0's);
- **disjoint data**: ``DistributedSampler`` gives rank r the items ``perm[r::W]`` of one
  seeded permutation (``set_epoch`` reshuffles each epoch), so a step's W micro-batches are a
  contiguous block of the permutation;
- **averaged gradients**: backward all-reduces (DDP) or reduce-scatters (FSDP) the gradient
  means, which equals the gradient of the global-batch mean;
- **gradient accumulation without waste**: the first ``k - 1`` of the ``k = grad_accum``
  micro-batches run under ``no_sync()`` (FSDP: ``set_requires_gradient_sync(False)``), so
  gradients are communicated once per optimiser step, not once per micro-batch; each loss is
  divided by k;
- **one writer**: only rank 0 saves, atomically (``llmbook_utils.checkpoint``), after every
  rank has finished; FSDP first gathers the full weights on all ranks (a collective).

The global batch is ``batch_size x grad_accum x W`` windows of ``context`` tokens. With
``--dtype float64`` the final weights equal a one-process run on the global batch to within
1e-12: in float32 they differ by rounding (the sums run in another order), which Adam's
division by the root of the second moment magnifies for gradients near zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from llmbook_utils.cache import write_atomic
from llmbook_utils.checkpoint import save_checkpoint
from llmbook_utils.data import LMBlockDataset
from llmbook_utils.device import set_seed
from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.serve import free_port

STRATEGIES = ("ddp", "fsdp")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class DDPConfig:
    """One run of the script; the command-line flags are these fields with dashes."""

    steps: int = 20  # optimiser steps
    batch_size: int = 8  # windows per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimiser step (k)
    context: int = 32  # tokens per window T
    d_model: int = 32  # GPT width
    n_layers: int = 2  # GPT blocks
    n_heads: int = 2  # attention heads
    lr: float = 1e-3  # AdamW learning rate (constant)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    seed: int = 0  # weights and data order
    strategy: str = "ddp"  # "ddp" (replicated model) or "fsdp" (sharded, fully_shard)
    dtype: str = "float32"  # parameters and compute: "float32" or "float64" (exact checks)
    tokens: str | None = None  # a torch.save'd 1-D integer tensor; None: synthetic tokens
    vocab_size: int = 0  # 0: max token id + 1
    synthetic_tokens: int = 20_000  # length of the synthetic corpus when tokens is None
    out: str | None = None  # rank 0 writes the checkpoint and metrics.json here

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "context", "d_model", "n_layers",
                     "n_heads", "synthetic_tokens"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r} is not one of {STRATEGIES}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not one of {sorted(DTYPES)}")
        if self.lr <= 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError(f"need lr={self.lr} > 0, grad_clip={self.grad_clip} >= 0, "
                             f"weight_decay={self.weight_decay} >= 0")  # fmt: skip


def load_tokens(cfg: DDPConfig) -> Tensor:
    """The corpus as a 1-D tensor: ``cfg.tokens`` or seeded synthetic ids (same on all ranks)."""
    if cfg.tokens is not None:
        tokens = torch.load(cfg.tokens, weights_only=True)
    else:
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        tokens = torch.randint(0, cfg.vocab_size or 64, (cfg.synthetic_tokens,), generator=gen)
    if tokens.dim() != 1 or tokens.dtype.is_floating_point:
        raise ValueError(f"tokens must be a 1-D integer tensor, got {tuple(tokens.shape)}")
    return tokens


def model_config(cfg: DDPConfig, tokens: Tensor) -> GPTConfig:
    """The GPT the script trains."""
    vocab = cfg.vocab_size or int(tokens.max()) + 1
    return GPTConfig(vocab_size=vocab, context_length=cfg.context, d_model=cfg.d_model,
                     n_layers=cfg.n_layers, n_heads=cfg.n_heads)  # fmt: skip


def make_optimizer(model: nn.Module, cfg: DDPConfig) -> torch.optim.AdamW:
    """AdamW with the run's learning rate (constant) and weight decay."""
    return torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay
    )


def _no_sync(model: nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """Skip the gradient communication of every micro-batch but the last of a step."""
    if hasattr(model, "no_sync"):  # DistributedDataParallel
        return contextlib.nullcontext() if last else model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # fully_shard (FSDP2)
        model.set_requires_gradient_sync(last)
    return contextlib.nullcontext()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[tuple[Tensor, Tensor]],
    grad_clip: float = 0.0,
) -> float:
    """One optimiser step over k micro-batches, gradients accumulated.

    Each micro-batch's mean loss is divided by k, so the summed gradient is the gradient of the
    mean over all k micro-batches (equal-sized micro-batches: the mean of the global batch).
    Under DDP/FSDP only the last backward communicates.

    Args:
        model: returns ``(logits, loss)`` for ``(x, y)``; plain, DDP-wrapped or fully_shard'ed.
        optimizer: its optimiser.
        micro_batches: k pairs ``(x, y)``, each (b, T).
        grad_clip: max global gradient norm (0: no clipping).

    Returns:
        The mean loss over the micro-batches (of this process).
    """
    if not micro_batches:
        raise ValueError("micro_batches is empty")
    n, total = len(micro_batches), 0.0
    for i, (x, y) in enumerate(micro_batches):
        with _no_sync(model, last=i == n - 1):
            _, loss = model(x, y)
            (loss / n).backward()  # the 1/k: a sum of k mean-gradients would be k times too big
        total = total + loss.detach()  # on the device: no host sync per micro-batch
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return (total / n).item()


def _setup() -> tuple[int, int, torch.device]:
    """Join the process group when launched by torchrun; return (rank, world size, device)."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return rank, world, device


def _wrap(model: GPT, strategy: str, world: int, device: torch.device) -> nn.Module:
    if world == 1:
        return model
    if strategy == "ddp":
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:  # one all-gather per block, freed after use
        fully_shard(block)
    return fully_shard(model)


def _full_state_dict(model: nn.Module, strategy: str, world: int, rank: int) -> dict[str, Tensor]:
    """The unsharded weights, on the CPU, on rank 0; other ranks get an empty dict.

    Under FSDP this is a collective (every rank must call it): the shards are gathered to rank
    0 only (``cpu_offload=True`` with ``full_state_dict=True``), so no other rank holds a full
    copy. Under DDP every rank already holds the full weights, and only rank 0 copies them.
    """
    if world > 1 and strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=options)
    if rank != 0:
        return {}
    inner = model.module if hasattr(model, "module") else model
    return {k: v.detach().cpu() for k, v in inner.state_dict().items()}


def run(cfg: DDPConfig) -> dict:
    """Train; rank 0 saves ``out/model`` (a checkpoint) and ``out/metrics.json``.

    Returns:
        The metrics (on every rank): losses per step, the world size, tokens/s.
    """
    rank, world, device = _setup()
    try:
        tokens = load_tokens(cfg)
        config = model_config(cfg, tokens)
        set_seed(cfg.seed)  # identical initial weights on every rank
        model = GPT(config).to(device=device, dtype=DTYPES[cfg.dtype])
        wrapped = _wrap(model, cfg.strategy, world, device)
        optimizer = make_optimizer(wrapped, cfg)
        data = LMBlockDataset(tokens, cfg.context, stride=cfg.context)
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)  # fmt: skip
        loader = DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, drop_last=True)
        if len(loader) < cfg.grad_accum:
            raise ValueError(f"{len(data)} windows give {len(loader)} micro-batches per rank "
                             f"and epoch, fewer than grad_accum={cfg.grad_accum}")  # fmt: skip

        def micro_batches():
            epoch = 0
            while True:
                sampler.set_epoch(epoch)  # a new permutation each epoch, the same on all ranks
                yield from loader
                epoch += 1

        stream, losses = micro_batches(), []
        start = time.perf_counter()
        for _ in range(cfg.steps):
            batch = [tuple(t.to(device) for t in next(stream)) for _ in range(cfg.grad_accum)]
            # on the device: a nccl group has no CPU backend for the all-reduce below
            loss = torch.tensor(train_step(wrapped, optimizer, batch, cfg.grad_clip), device=device)
            if world > 1:
                dist.all_reduce(loss)  # for the log only: the mean over the ranks
                loss /= world
            losses.append(loss.item())
        seconds = time.perf_counter() - start
        global_batch = cfg.batch_size * cfg.grad_accum * world
        metrics = {"world_size": world, "strategy": cfg.strategy, "losses": losses,
                   "global_batch": global_batch, "seconds": seconds,
                   "tokens_per_s": cfg.steps * global_batch * cfg.context / seconds,
                   "backend": dist.get_backend() if world > 1 else None,
                   "config": asdict(cfg)}  # fmt: skip
        state = _full_state_dict(wrapped, cfg.strategy, world, rank)  # every rank calls it
        if world > 1:
            dist.barrier()  # every rank is done before anything is written
        if rank == 0 and cfg.out is not None:  # one writer, atomic files
            out = Path(cfg.out)
            plain = GPT(config).to(DTYPES[cfg.dtype])  # an unwrapped, unsharded model to save
            plain.load_state_dict(state)
            save_checkpoint(out / "model", plain, step=cfg.steps, train_config=cfg)
            write_atomic(out / "metrics.json", json.dumps(metrics, indent=1).encode())
        return metrics
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def cli_args(cfg: DDPConfig) -> list[str]:
    """The command-line flags that reproduce ``cfg`` (the inverse of ``parse_args``)."""
    args = []
    for name, value in asdict(cfg).items():
        if value is not None:
            args += ["--" + name.replace("_", "-"), str(value)]
    return args


def launch(
    cfg: DDPConfig, nproc: int = 2, timeout: float = 600.0, env: dict[str, str] | None = None
) -> dict:
    """Run the script under ``torchrun`` on this machine only (127.0.0.1, a free port).

    Args:
        cfg: the run; ``cfg.out`` must be set (rank 0 writes the metrics there).
        nproc: processes (``--nproc_per_node``).
        timeout: seconds before the launch is killed.
        env: extra environment variables (``{"CUDA_VISIBLE_DEVICES": ""}``: the CPU).

    Returns:
        The metrics that rank 0 wrote.

    Raises:
        ValueError: without ``cfg.out``. RuntimeError: when torchrun fails (with its output).
    """
    import subprocess
    import sys

    if cfg.out is None:
        raise ValueError("launch needs cfg.out, where rank 0 writes its metrics")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               "-m", "llmbook_utils.ddp_train", *cli_args(cfg)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo on the loopback interface only
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads((Path(cfg.out) / "metrics.json").read_text())


def parse_args(argv: Sequence[str] | None = None) -> DDPConfig:
    """``DDPConfig`` from command-line flags (``--batch-size 8`` sets ``batch_size``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in asdict(DDPConfig()).items():
        kind = type(default) if default is not None else str
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=default)
    return DDPConfig(**vars(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m llmbook_utils.ddp_train``."""
    metrics = run(parse_args(argv))
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({k: v for k, v in metrics.items() if k != "config"}))


if __name__ == "__main__":
    main()
