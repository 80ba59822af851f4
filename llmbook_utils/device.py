"""Device selection, seeding and environment detection."""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch


def get_device() -> torch.device:
    """Return the best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a run can be repeated exactly.

    Args:
        seed: a non-negative integer.

    Raises:
        ValueError: if ``seed`` is negative or not an integer.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def describe() -> str:
    """One line naming the device, the profile and the library versions (a chapter's first cell)."""
    from llmbook_utils.profile import get_profile

    device = get_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return (
        f"device: {name} | profile: {get_profile()} | torch {torch.__version__} "
        f"| threads: {torch.get_num_threads()}"
    )
