"""Shared test set-up: the smoke profile, the static-site mode and offline hubs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# Set before anything imports llmbook_utils or transformers, also when pytest runs bare.
os.environ.setdefault("LLMBOOK_PROFILE", "smoke")
os.environ.setdefault("LLMBOOK_STATIC", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

# Wall times of the chapters executed in this session (and of the fresh venv they ran in),
# for the summary table.
CHAPTER_TIMES: dict[str, float] = {}
SETUP_TIMES: dict[str, float] = {}
# Where tests/test_chapters.py keeps the chapters it executed (for the site and `make colab`).
EXECUTED_CHAPTERS = ROOT / "_build" / "smoke" / "chapters"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if not CHAPTER_TIMES and not SETUP_TIMES:
        return
    profile = os.environ["LLMBOOK_PROFILE"]
    terminalreporter.section(f"chapter execution times ({profile} profile)")
    for name, seconds in SETUP_TIMES.items():
        terminalreporter.write_line(f"{name:<40s} {seconds:7.1f} s")
    for name, seconds in sorted(CHAPTER_TIMES.items()):
        terminalreporter.write_line(f"{name:<40s} {seconds:7.1f} s")
    if CHAPTER_TIMES:
        terminalreporter.write_line(f"{'total':<40s} {sum(CHAPTER_TIMES.values()):7.1f} s")


@pytest.fixture
def pip_unreachable(monkeypatch):
    """Every ``pip download`` of ``llmbook_utils.cache`` fails as it does offline; returns the
    stand-in for ``subprocess.run``, for loaders that call other commands too (npm)."""
    from llmbook_utils import cache

    def unreachable(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "No matching distribution found")

    monkeypatch.setattr(cache.subprocess, "run", unreachable)
    return unreachable


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
def minilm_reference():
    """sentence-transformers' all-MiniLM-L6-v2, loaded from the book's local copy: the reference
    for our MiniLM sentence embeddings (skips where the model or the library is missing)."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from llmbook_utils.hf import local_model_dir

    try:
        folder = local_model_dir("minilm")
    except ValueError as err:
        pytest.skip(str(err))
    return sentence_transformers.SentenceTransformer(str(folder), device="cpu").eval()


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


@dataclass
class FreshVenv:
    """A virtual environment holding only the package's wheel and what it declares."""

    python: Path
    wheel: Path
    kernel_dirs: Path  # holds the kernelspec KERNEL_NAME, running this environment's python
    seconds: float  # time to build the wheel and install it


KERNEL_NAME = "llmbook-fresh"


def _run(cmd: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {result.returncode}): {' '.join(map(str, cmd))}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}",
            pytrace=False,
        )
    return result


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory) -> FreshVenv:
    """The reader's Colab path: a new venv, the wheel built from the repository (what
    ``pip install .`` or ``pip install git+REPO`` installs, not editable) and nothing else.

    ``requirements.txt`` serves only as constraints: it pins the versions pip picks (here, the
    local CPU torch instead of a CUDA wheel) but adds no package, so whatever the chapters need
    and ``pyproject.toml`` does not declare is missing, and a chapter fails. pip's cache is
    reused; only ``ipykernel`` is added, to run the chapters in this environment.
    """
    start = time.perf_counter()
    work = tmp_path_factory.mktemp("fresh_venv")
    source = work / "src"  # a copy, so that building leaves no build/ or egg-info in the tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "llmbook_utils", source / "llmbook_utils",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )  # fmt: skip
    dist = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source],
        "building the wheel",
    )
    wheel = next(dist.glob("llmbook_utils-*.whl"))
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", venv], "creating the venv")
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",
            "-c",
            ROOT / "requirements.txt",
            wheel,
            "ipykernel",
        ],
        "pip install of the wheel into a fresh venv",
        env=env,
        timeout=1800,
    )
    kernel_dirs = work / "kernels"
    spec = kernel_dirs / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernelspec = {"argv": argv, "display_name": "fresh venv", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernelspec))
    seconds = time.perf_counter() - start
    SETUP_TIMES["fresh venv: wheel + pip install"] = seconds
    return FreshVenv(python, wheel, kernel_dirs, seconds)
