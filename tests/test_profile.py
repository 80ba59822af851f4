"""Profiles: the environment variable, and a default that follows get_device().

The rule: ``gpu`` exactly when ``get_device()`` is a CUDA GPU; ``cpu`` on the CPU and on
Apple's MPS (which still computes on the MPS device). Accelerators are simulated.
"""

from __future__ import annotations

import pytest
import torch

from llmbook_utils.device import get_device
from llmbook_utils.profile import CPU, GPU, SMOKE, Profile, default_profile_name, get_profile


@pytest.fixture
def no_profile_variable(monkeypatch):
    monkeypatch.delenv("LLMBOOK_PROFILE", raising=False)


@pytest.mark.parametrize(
    ("cuda", "mps", "device", "profile"),
    [(True, False, "cuda", "gpu"), (True, True, "cuda", "gpu"), (False, True, "mps", "cpu"),
     (False, False, "cpu", "cpu")],
)  # fmt: skip
def test_default_profile_follows_the_device(
    monkeypatch, no_profile_variable, cuda, mps, device, profile
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert get_device() == torch.device(device)  # where the tensors go ...
    assert get_profile() == Profile(profile)  # ... and how large the experiments are
    assert get_profile().name == default_profile_name(get_device())  # one rule, no drift


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for value, expected in [("smoke", SMOKE), (" CPU ", CPU), ("gpu", GPU)]:
        monkeypatch.setenv("LLMBOOK_PROFILE", value)
        assert get_profile() == expected
    monkeypatch.setenv("LLMBOOK_PROFILE", "tpu")
    with pytest.raises(ValueError, match="LLMBOOK_PROFILE='tpu'"):
        get_profile()


def test_pick_and_validation():
    assert [p.pick(smoke=1, cpu=2, gpu=3) for p in (SMOKE, CPU, GPU)] == [1, 2, 3]
    assert SMOKE.is_smoke and not CPU.is_smoke and str(GPU) == "gpu"
    with pytest.raises(ValueError, match="unknown profile 'big'"):
        Profile("big")
