"""Shared test set-up: the smoke profile, the static-site mode and offline hubs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before anything imports llmbook_utils or transformers, also when pytest runs bare.
os.environ.setdefault("LLMBOOK_PROFILE", "smoke")
os.environ.setdefault("LLMBOOK_STATIC", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

# Wall times of the chapters executed in this session, for the summary table.
CHAPTER_TIMES: dict[str, float] = {}


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if not CHAPTER_TIMES:
        return
    profile = os.environ["LLMBOOK_PROFILE"]
    terminalreporter.section(f"chapter execution times ({profile} profile)")
    for name, seconds in sorted(CHAPTER_TIMES.items()):
        terminalreporter.write_line(f"{name:<40s} {seconds:7.1f} s")
    terminalreporter.write_line(f"{'total':<40s} {sum(CHAPTER_TIMES.values()):7.1f} s")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and stall when other jobs share the CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
