"""What ``train`` reports while it runs (``Callback``) and what it returns (``History``).

A callback's hooks run at fixed points of the loop: once at the start, after every
``log_every`` steps with the mean training loss, after every evaluation, and once at the end.
``llmbook_utils.live.LiveLossPlot`` is one: it redraws a loss curve while a notebook trains.
``llmbook_utils.train`` re-exports both classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Callback:
    """Hooks into ``train``; subclass and override what you need (all are no-ops here)."""

    def on_train_begin(self, cfg: Any) -> None: ...  # the run's TrainConfig

    def on_log(self, record: dict) -> None: ...  # {"step", "train_loss", "lr", "elapsed_s", ...}

    def on_eval(self, record: dict) -> None: ...  # {"step", "val_loss", "elapsed_s"}

    def on_train_end(self, history: History) -> None: ...


@dataclass
class History:
    """What ``train`` recorded: train-loss records every ``log_every`` steps, eval records.

    Attributes:
        records: dicts with ``step`` and ``train_loss``, ``lr``, ``elapsed_s`` (and
            ``tokens_per_s`` for token batches), or ``step``, ``val_loss``, ``elapsed_s``.
        stopped_early: True when early stopping ended the run.
        precision: the autocast precision the run used: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """

    records: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    precision: str = "fp32"

    @property
    def train_loss(self) -> list[float]:
        return [r["train_loss"] for r in self.records if "train_loss" in r]

    @property
    def val_loss(self) -> list[float]:
        return [r["val_loss"] for r in self.records if "val_loss" in r]

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per recorded step (train and eval columns merged)."""
        import pandas as pd

        return pd.DataFrame(self.records).groupby("step", sort=True).first()
