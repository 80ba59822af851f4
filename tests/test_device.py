"""Device choice (cuda > mps > cpu), seeding, and what describe() prints.

The accelerators are simulated by monkeypatching ``torch.cuda`` and ``torch.backends.mps``;
the seeding reference is the random streams themselves, and a fresh interpreter for the hash
seed (which only the environment at start-up decides).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from llmbook_utils.device import describe, get_device, in_colab, set_seed


def fake_hardware(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla T4")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    fake_hardware(monkeypatch, cuda, mps)
    assert get_device() == torch.device(expected)


def test_describe_names_device_and_profile(monkeypatch):
    monkeypatch.delenv("LLMBOOK_PROFILE", raising=False)
    fake_hardware(monkeypatch, cuda=True, mps=False)
    assert describe().startswith("device: Tesla T4 | profile: gpu | torch ")
    fake_hardware(monkeypatch, cuda=False, mps=True)
    line = describe()
    assert line.startswith("device: mps | profile: cpu (the default on Apple GPUs")
    assert "LLMBOOK_PROFILE=gpu" in line
    monkeypatch.setenv("LLMBOOK_PROFILE", "smoke")  # chosen explicitly: nothing to explain
    assert describe().startswith("device: mps | profile: smoke | torch ")
    fake_hardware(monkeypatch, cuda=False, mps=False)
    assert describe().startswith("device: cpu | profile: smoke | torch ")


def draws() -> tuple:
    return random.random(), np.random.rand(), torch.rand(3).tolist(), torch.randn(2).tolist()


def test_set_seed_repeats_python_numpy_and_torch_streams():
    set_seed(123)
    first = draws()
    set_seed(123)
    assert draws() == first
    set_seed(124)
    assert draws() != first
    set_seed(2**40)  # larger than NumPy's 32-bit seeds: reduced, not rejected
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="non-negative int"):
            set_seed(bad)


def test_set_seed_does_not_pretend_to_set_the_hash_seed(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    set_seed(0)
    assert "PYTHONHASHSEED" not in os.environ

    def string_hash(env: dict) -> str:
        code = "from llmbook_utils.device import set_seed; set_seed(0); print(hash('llmbook'))"
        env = {**os.environ, **env}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    # Only the environment at interpreter start fixes hash(): set_seed(0) inside cannot.
    assert string_hash({"PYTHONHASHSEED": "0"}) == string_hash({"PYTHONHASHSEED": "0"})
    assert string_hash({"PYTHONHASHSEED": "random"}) != string_hash({"PYTHONHASHSEED": "random"})


def test_in_colab(monkeypatch):
    assert not in_colab()
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert in_colab()
