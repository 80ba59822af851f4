"""What the reader's processor can do: its vector units, and its measured matmul speed.

Whether bf16 is faster or slower than float32 on a CPU depends on the chip. PyTorch's CPU
kernels use the widest instruction set they find (``torch.backends.cpu.get_cpu_capability()``:
``"DEFAULT"``, ``"AVX2"``, ``"AVX512"``, ...); bf16 matmuls are fast only with native bf16
instructions (``avx512_bf16``) or Intel's matrix units (AMX, flags ``amx_bf16``/``amx_tile``).
Without them, bf16 is converted to float32 and back around every operation: slower than plain
float32. ``cpu_features()`` reads what is there; ``matmul_flops()`` measures it.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from llmbook_utils.device import synchronize

BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


@dataclass(frozen=True)
class CPUFeatures:
    """The reader's CPU, as PyTorch and the operating system see it.

    Attributes:
        model: the processor's name (``/proc/cpuinfo``'s ``model name``, or ``platform``'s).
        capability: PyTorch's CPU dispatch level (``"AVX2"``, ``"AVX512"``, ...).
        flags: the bf16-related flags found among ``BF16_FLAGS`` (empty when none, or when the
            system has no ``/proc/cpuinfo``, e.g. macOS).
        threads: the threads torch computes with.
    """

    model: str
    capability: str
    flags: tuple[str, ...]
    threads: int

    @property
    def native_bf16(self) -> bool:
        """True when the CPU has bf16 arithmetic (AVX512-BF16 or AMX)."""
        return any(flag in self.flags for flag in ("avx512_bf16", "amx_bf16"))


def cpu_features(cpuinfo: str | None = None) -> CPUFeatures:
    """Detect the CPU: its name, PyTorch's capability level and the bf16 flags.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (read from the system when None).
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.exists() else ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags |= set(value.split())
    capability = torch.backends.cpu.get_cpu_capability()
    found = tuple(flag for flag in BF16_FLAGS if flag in flags)
    return CPUFeatures(model, capability, found, torch.get_num_threads())


def matmul_flops(
    n: int = 1024,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    repeats: int = 5,
) -> float:
    """Measured FLOP/s of an (n, n) @ (n, n) matmul: ``2 n^3`` FLOPs, best of ``repeats``.

    Args:
        n: matrix size.
        dtype: ``torch.float32``, ``torch.bfloat16`` or ``torch.float16``.
        device: where to run.
        repeats: timed runs after one warm-up; the fastest counts (the least disturbed).
    """
    if n < 1 or repeats < 1:
        raise ValueError(f"n={n} and repeats={repeats} must be >= 1")
    device = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    a @ b  # warm-up: kernel selection, caches
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
