"""Checkpoints: weights in safetensors, optimiser state and a JSON state, written atomically.

A checkpoint is a directory:

- ``model.safetensors``: the weights (tied weights stored once);
- ``optimizer.pt``: the optimiser state, loadable with ``torch.load(..., weights_only=True)``;
- ``state.json``: the step, the model and training configurations, the random-number-generator
  states (Python, NumPy, torch CPU and CUDA), the grad-scaler state and anything else the
  caller adds (``train`` adds the data position and the history).

Every file is readable by all and writable by the owner (0o644, the directory 0o755), like the
files of the data cache: safetensors alone would leave the weights owner-only.

``train`` saves and resumes through these functions; ``llmbook_utils.train`` re-exports them.
To stop a run and continue it bit for bit, use ``train(..., stop_at=k)`` and then
``train(..., resume_from=True)`` with the same ``TrainConfig`` (see ``llmbook_utils.train``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FILE_MODE = 0o644  # as the cache's files (llmbook_utils.cache.write_atomic)
DIR_MODE = 0o755


def _rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": [x.tolist() if isinstance(x, np.ndarray) else x for x in np.random.get_state()],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _config_dict(config: Any) -> dict | None:
    """A model config as a dict: our dataclasses, or a Hugging Face ``PretrainedConfig``."""
    if is_dataclass(config):
        return asdict(config)
    if hasattr(config, "to_json_string"):
        return json.loads(config.to_json_string(use_diff=False))
    return None


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int = 0,
    train_config: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    extra: dict | None = None,
) -> Path:
    """Save a checkpoint directory atomically.

    The directory holds ``model.safetensors`` (weights; tied weights stored once),
    ``optimizer.pt`` (loadable with ``weights_only=True``) and ``state.json`` (step, model and
    train configs, random-number-generator states, grad-scaler state and ``extra``, e.g. the
    data position). Everything is written into a temporary directory next to ``path`` which
    then replaces ``path``: a crash while saving leaves the previous checkpoint intact.

    Args:
        path: the checkpoint directory.
        model: the model; its ``config`` attribute is saved (a dataclass or a Hugging Face
            config).
        optimizer: optional optimiser whose state to save.
        step: optimiser steps done.
        train_config: the run's ``TrainConfig`` (any dataclass).
        scaler: the fp16 grad scaler, if any.
        extra: more JSON-serialisable state.

    Returns:
        The checkpoint directory.
    """
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    config = getattr(model, "config", None)
    state = {
        "step": step,
        "model_config": _config_dict(config),
        "train_config": asdict(train_config) if is_dataclass(train_config) else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": _rng_state(),
        "extra": extra or {},
    }
    try:
        tmp.mkdir()
        save_model(model, str(tmp / "model.safetensors"), force_contiguous=True)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, default=str))
        for file in tmp.iterdir():
            os.chmod(file, FILE_MODE)
        os.chmod(tmp, DIR_MODE)
        # Two renames: the old checkpoint moves aside, the new one takes its place.
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The new checkpoint is in place: remove the old one and leftovers of earlier crashes.
    for stale in path.parent.glob(f".{path.name}.*-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return path


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    restore_rng: bool = False,
) -> dict:
    """Load what ``save_checkpoint`` wrote into the given objects and return the state.

    Args:
        path: the checkpoint directory.
        model: receives the weights (strictly: names and shapes must match).
        optimizer: receives the optimiser state.
        scaler: receives the grad-scaler state.
        restore_rng: also restore the Python, NumPy and torch random-number generators.

    Returns:
        The ``state.json`` dict: ``step``, ``model_config``, ``train_config``, ``rng``,
        ``extra``.
    """
    from safetensors.torch import load_model

    path = Path(path)
    if not (path / "state.json").exists():
        old = sorted(path.parent.glob(f".{path.name}.old-*"))  # a crash between the renames
        if not old:
            raise ValueError(f"no checkpoint at {path} (state.json missing)")
        path = old[0]
    state = json.loads((path / "state.json").read_text())
    if model is not None:
        device = next(model.parameters(), torch.empty(0)).device
        load_model(model, str(path / "model.safetensors"), device=str(device))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    if restore_rng:
        _set_rng_state(state["rng"])
    return state
