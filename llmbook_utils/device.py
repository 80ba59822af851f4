"""Device selection, seeding and environment detection.

``get_device()`` picks where tensors go: CUDA, then Apple's MPS, then the CPU. The profile
(``llmbook_utils.profile``) picks how large the experiments are, and its default follows the
device: ``gpu`` on CUDA, ``cpu`` everywhere else, Apple's MPS included (see ``get_profile``).
``describe()`` prints both, and says so when an MPS machine runs the ``cpu`` sizes.
"""

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
    """Seed Python's ``random``, NumPy and PyTorch (CPU, CUDA, MPS) so a run can be repeated.

    It does not fix the randomisation of ``hash()`` for strings and bytes (so the iteration
    order of a ``set`` of strings can change between runs): Python reads ``PYTHONHASHSEED``
    once, when the interpreter starts, and setting it in a running process has no effect on
    that process. To fix it, start Python (or the Jupyter kernel) with the variable set, e.g.
    ``PYTHONHASHSEED=0 jupyter lab``, or sort a set before its order matters.

    Args:
        seed: a non-negative integer.

    Raises:
        ValueError: if ``seed`` is negative or not an integer.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA and MPS device


def synchronize(device: str | torch.device) -> None:
    """Wait until the kernels queued on ``device`` have run; a no-op on the CPU.

    GPU calls return before the work is done, so a clock read without this measures the
    launch, not the computation: call it before each ``time.perf_counter()`` of a timing.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def describe() -> str:
    """One line naming the device, the profile and the library versions (a chapter's first cell).

    On Apple's MPS without ``LLMBOOK_PROFILE`` it adds why the profile is ``cpu``.
    """
    from llmbook_utils.profile import PROFILE_ENV, get_profile

    device = get_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    profile = get_profile()
    if device.type == "mps" and not os.environ.get(PROFILE_ENV, "").strip():
        profile = f"{profile} (the default on Apple GPUs; {PROFILE_ENV}=gpu for larger runs)"
    return (
        f"device: {name} | profile: {profile} | torch {torch.__version__} "
        f"| threads: {torch.get_num_threads()}"
    )
