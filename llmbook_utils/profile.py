"""Run profiles: one notebook, three sizes.

Every chapter asks the active profile for its sizes instead of hard-coding them, so the same
notebook proves itself in seconds (``smoke``), gives trustworthy results on a laptop (``cpu``) and
approaches published numbers on a GPU (``gpu``).

The profile comes from the environment variable ``LLMBOOK_PROFILE``; without it, ``gpu`` is used
when CUDA is available and ``cpu`` otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")

PROFILE_NAMES = ("smoke", "cpu", "gpu")


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


def get_profile() -> Profile:
    """Return the active profile.

    Reads ``LLMBOOK_PROFILE`` (``smoke``, ``cpu`` or ``gpu``); when it is unset, chooses ``gpu``
    if CUDA is available and ``cpu`` otherwise.

    Raises:
        ValueError: if ``LLMBOOK_PROFILE`` names no profile.
    """
    name = os.environ.get("LLMBOOK_PROFILE", "").strip().lower()
    if not name:
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILE_NAMES:
        raise ValueError(f"LLMBOOK_PROFILE={name!r} is not one of {PROFILE_NAMES}")
    return Profile(name)
