"""Run profiles: one notebook, three sizes.

Every chapter asks the active profile for its sizes instead of hard-coding them, so the same
notebook proves itself in seconds (``smoke``), gives trustworthy results on a laptop (``cpu``) and
approaches published numbers on a GPU (``gpu``).

The profile comes from the environment variable ``LLMBOOK_PROFILE``. Without it, the default
follows ``llmbook_utils.device.get_device()``: ``gpu`` when the device is a CUDA GPU, ``cpu``
for the CPU and for Apple's MPS. An MPS machine computes on its GPU (``get_device()`` returns
``mps``) with the ``cpu`` sizes: the ``gpu`` sizes are budgeted for a T4-class CUDA GPU with
fp16/bf16 tensor cores, while ``train`` runs MPS in float32, and the book's prose quotes the
``cpu`` profile, so a Mac reproduces the numbers in the text. ``LLMBOOK_PROFILE=gpu`` opts in
to the larger runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch

from llmbook_utils.device import get_device

T = TypeVar("T")

PROFILE_NAMES = ("smoke", "cpu", "gpu")
PROFILE_ENV = "LLMBOOK_PROFILE"


@dataclass(frozen=True)
class Profile:
    """One of the three run sizes.

    Attributes:
        name: ``"smoke"`` (tests and CI: every cell runs, tiny sizes, <= 60 s a chapter),
            ``"cpu"`` (meaningful results on a 2-core laptop, <= 5 min a chapter) or
            ``"gpu"`` (larger runs, close to published numbers, <= 5 min on a T4-class GPU).
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {self.name!r}; expected one of {PROFILE_NAMES}")

    def pick(self, *, smoke: T, cpu: T, gpu: T) -> T:
        """Return the value for this profile.

        A chapter writes its three sizes side by side, so a reader sees at a glance how the
        experiment scales: ``steps = profile.pick(smoke=20, cpu=2_000, gpu=10_000)``.
        """
        return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[self.name]

    @property
    def is_smoke(self) -> bool:
        """True in the ``smoke`` profile, where results are not meant to be meaningful."""
        return self.name == "smoke"

    def __str__(self) -> str:
        return self.name


SMOKE = Profile("smoke")
CPU = Profile("cpu")
GPU = Profile("gpu")


def default_profile_name(device: torch.device) -> str:
    """The profile for a device when ``LLMBOOK_PROFILE`` is unset: ``gpu`` exactly on CUDA.

    Apple's MPS gets ``cpu`` (see the module docstring for why).
    """
    return "gpu" if device.type == "cuda" else "cpu"


def get_profile() -> Profile:
    """Return the active profile.

    Reads ``LLMBOOK_PROFILE`` (``smoke``, ``cpu`` or ``gpu``); when it is unset, returns
    ``default_profile_name(get_device())``: ``gpu`` on CUDA, ``cpu`` on the CPU and on MPS.

    Raises:
        ValueError: if ``LLMBOOK_PROFILE`` names no profile.
    """
    name = os.environ.get(PROFILE_ENV, "").strip().lower()
    if not name:
        name = default_profile_name(get_device())
    if name not in PROFILE_NAMES:
        raise ValueError(f"LLMBOOK_PROFILE={name!r} is not one of {PROFILE_NAMES}")
    return Profile(name)
