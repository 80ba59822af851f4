"""Mixed precision: which autocast dtype ``train`` uses on which hardware.

The rule for ``precision="auto"``:

- **CPU and Apple's MPS: float32.** CPUs without bf16 units (the AVX2 machines this book is
  tested on) run bf16 far *slower* than fp32, and fp32 results reproduce across machines.
  bf16 on the CPU stays available as a measured option (``precision="bf16"``, chapter 13).
- **CUDA, compute capability >= 8** (Ampere and later: A100, RTX 30xx, L4, H100): bf16
  autocast. bf16 keeps float32's exponent range, so no loss scaling is needed.
- **CUDA, compute capability < 8** (Volta and Turing: V100, and the T4 that Colab lends for
  free): fp16 autocast with a gradient scaler. These GPUs have fp16 tensor cores but no bf16
  units; torch would *emulate* bf16 there (``torch.cuda.is_bf16_supported()`` counts emulation
  by default), which is slow.

Asking for ``precision="bf16"`` on a CUDA GPU without native bf16 falls back to fp16 with a
scaler and logs a warning, so a notebook written for bf16 still runs on a T4; ``History``
records the precision a run really used.

fp16 always comes with a ``torch.amp.GradScaler``: fp16's smallest normal number is about
6e-5, and without scaling the loss up before ``backward`` small gradients underflow to zero
(Micikevicius et al., 2018, https://arxiv.org/abs/1710.03740). The scaler unscales the gradients
before clipping and skips any step whose gradients overflowed.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def has_native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes in bf16 natively (CUDA: compute capability >= 8.0).

    CPUs and MPS count as True: autocast supports bf16 there (how fast depends on the chip).
    """
    if device.type == "cuda":
        return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)
    return True


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain float32).

    Args:
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see the module docstring).
        device: where the model runs.

    Returns:
        ``torch.bfloat16``, ``torch.float16`` (train with a ``GradScaler``) or None.

    Raises:
        ValueError: for an unknown ``precision``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {PRECISIONS}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if has_native_bf16(device) else torch.float16
    if precision == "bf16" and not has_native_bf16(device):
        major, minor = torch.cuda.get_device_capability(device)
        logger.warning(
            "precision='bf16' asked for, but this GPU (compute capability %d.%d < 8.0) has no "
            "native bf16: using fp16 with a gradient scaler instead",
            major,
            minor,
        )
        return torch.float16
    return DTYPES[precision]


def make_grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """A ``GradScaler`` for ``device``, enabled exactly when ``dtype`` is fp16.

    Raises:
        ValueError: when this torch has no gradient scaler for the device (e.g. fp16 on MPS
            with an older torch).
    """
    try:
        return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(
            f"precision='fp16' needs a gradient scaler, which torch {torch.__version__} does "
            f"not offer on {device.type}: {err}. Use precision='fp32' or 'bf16'."
        ) from err
