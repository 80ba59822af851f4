"""Activation checkpointing for the book's GPT, and two ways to measure activation memory.

Training keeps, for the backward pass, the tensors every operation needs to compute its
gradient: for a Transformer they grow with batch x sequence x width x layers and soon
outweigh the parameters. Activation checkpointing (Chen et al., 2016,
https://arxiv.org/abs/1604.06174) keeps only each block's *input* and recomputes the block's
forward pass during the backward pass: about one extra forward pass of compute (a third more
than forward + backward) for memory that no longer grows with the depth of a block.

``CheckpointedGPT(model)`` runs a ``llmbook_utils.gpt.GPT`` with every block under
``torch.utils.checkpoint.checkpoint`` (the non-reentrant implementation, the one PyTorch
recommends). It shares the model's parameters: gradients land in ``model`` itself.

Measurements, on any device:

- ``saved_tensor_bytes(fn)``: the bytes of the distinct tensors autograd saves for backward
  while ``fn`` runs (through ``torch.autograd.graph.saved_tensors_hooks``): the activation
  memory proper, independent of the allocator.
- ``peak_memory_bytes(fn)``: the peak of allocated memory above the start while ``fn`` runs:
  CUDA's memory statistics on a GPU, PyTorch's profiler (``profile_memory=True``) on the CPU.

Shape legend: B batch, T time, C channels (d_model), V vocabulary.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from llmbook_utils.gpt import GPT


class CheckpointedGPT(nn.Module):
    """A GPT whose blocks recompute their activations in the backward pass.

    Args:
        model: the GPT to run; its parameters are shared, not copied.
        enabled: False runs the plain forward pass (to compare the two with one object).
    """

    def __init__(self, model: GPT, enabled: bool = True) -> None:
        super().__init__()
        self.gpt = model
        self.enabled = enabled

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Same as ``GPT.forward``: idx (B, T) -> (logits (B, T, V), loss or None); with
        ``enabled``, ``GPT.forward(..., checkpoint=True)``: only each block's input is kept,
        and the block runs again in the backward pass."""
        return self.gpt(idx, targets, checkpoint=self.enabled)


def saved_tensor_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs.

    Views of one storage (and a tensor saved by several operations) count once. Inside a
    non-reentrant ``checkpoint`` region the checkpoint's own hooks take over and nothing is
    saved, which is the point.
    """
    storages: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values())


def peak_memory_bytes(fn: Callable[[], object], device: str | torch.device = "cpu") -> int:
    """Peak memory allocated by tensors while ``fn()`` runs, above what was allocated before.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the profiler records every allocation
    and free (``profile_memory=True``); their running sum in time order peaks where the most
    memory was live.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]
    current = peak = 0
    for _, nbytes in sorted(events):
        current += nbytes  # allocations positive, frees negative
        peak = max(peak, current)
    return peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: the profiler's C++ layer prints start/stop notices there."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
