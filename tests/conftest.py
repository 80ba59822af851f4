"""Shared test set-up: the smoke profile, the static-site mode and offline hubs."""

from __future__ import annotations

import os
import shutil
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


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test (Debian's, installed by `make chromium`).

    A live sync_playwright context keeps an event loop running, and a second one refuses to start
    inside it, so the tests share this one instead of opening their own.
    """
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI: `make chromium` should have installed it")
        pytest.skip("Chromium not found: install Debian's `chromium` (make chromium) to run this")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()
