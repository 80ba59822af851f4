"""Timing helpers for `make bench`: medians of interleaved repeats after a warm-up."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    """Median and spread (min, max) of repeated measurements, in seconds."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        return cls(statistics.median(samples), min(samples), max(samples))


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, Timing]:
    """Run each function once to warm up, then ``repeats`` rounds in turn; each returns seconds."""
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(fn())
    return {name: Timing.of(s) for name, s in samples.items()}
