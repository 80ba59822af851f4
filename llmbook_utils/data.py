"""Data for training: datasets, collators, samplers, masking and generated tasks, in one place.

This module holds the language-model block dataset and re-exports the rest, so a chapter can
import everything data-related from ``llmbook_utils.data``:

- ``LMBlockDataset`` (here): (x, y) next-token windows over one long token tensor (GPT
  pretraining).
- ``pad_sequences``, ``pad_collate``, ``PaddingCollator``, ``IGNORE_INDEX``
  (``llmbook_utils.collate``): padding variable-length examples.
- ``EpochSampler``, ``LengthBucketSampler`` (``llmbook_utils.batching``): seeded data orders.
- ``mask_tokens``, ``make_nsp_pairs`` (``llmbook_utils.masking``): BERT's pretraining
  objectives (Devlin et al., 2019, https://arxiv.org/abs/1810.04805).
- ``make_date_task``, ``make_reversal_task``, ``Seq2SeqTokenizer``, ``Seq2SeqCollator``
  (``llmbook_utils.tasks``): generated sequence-to-sequence tasks.
- the corpus loaders (``llmbook_utils.corpora``).

Shape legend: T time (sequence length).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from llmbook_utils.batching import EpochSampler, LengthBucketSampler
from llmbook_utils.collate import IGNORE_INDEX, PaddingCollator, pad_collate, pad_sequences
from llmbook_utils.corpora import (
    SENTIMENT_LABELS,
    Digits,
    TextCorpus,
    cache_root,
    load_digits,
    load_shakespeare,
    load_tweet_sentiment,
    normalise_tweet,
    strip_gutenberg,
)
from llmbook_utils.masking import make_nsp_pairs, mask_tokens
from llmbook_utils.tasks import (
    DATE_FORMATS,
    MONTHS,
    Seq2SeqCollator,
    Seq2SeqTokenizer,
    make_date_task,
    make_reversal_task,
)

__all__ = [
    "DATE_FORMATS",
    "IGNORE_INDEX",
    "MONTHS",
    "SENTIMENT_LABELS",
    "Digits",
    "EpochSampler",
    "LMBlockDataset",
    "LengthBucketSampler",
    "PaddingCollator",
    "Seq2SeqCollator",
    "Seq2SeqTokenizer",
    "TextCorpus",
    "cache_root",
    "load_digits",
    "load_shakespeare",
    "load_tweet_sentiment",
    "make_date_task",
    "make_nsp_pairs",
    "make_reversal_task",
    "mask_tokens",
    "normalise_tweet",
    "pad_collate",
    "pad_sequences",
    "strip_gutenberg",
]


class LMBlockDataset(Dataset):
    """Every window of ``block_size + 1`` tokens, as (input, next-token target) pairs.

    Item ``i`` is ``x = tokens[s : s + T]`` and ``y = tokens[s + 1 : s + T + 1]`` with
    ``s = i * stride``: random access in O(1), and the items are views, so the corpus is never
    copied (the DataLoader copies only a batch when it stacks one).

    Args:
        tokens: 1-D integer tensor (or array/list) of token ids, the whole corpus.
        block_size: context length T.
        stride: distance between window starts; 1 gives every window (training),
            ``block_size`` gives non-overlapping windows (evaluation).
    """

    def __init__(
        self, tokens: Tensor | np.ndarray | Sequence[int], block_size: int, stride: int = 1
    ) -> None:
        tokens = torch.as_tensor(tokens)
        if tokens.dim() != 1 or tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise ValueError(
                f"tokens must be a 1-D integer tensor, got shape {tuple(tokens.shape)} and "
                f"dtype {tokens.dtype}"
            )
        if block_size < 1 or stride < 1:
            raise ValueError(f"block_size={block_size} and stride={stride} must be >= 1")
        if len(tokens) < block_size + 1:
            raise ValueError(
                f"{len(tokens)} tokens are too few for one block of block_size={block_size} "
                "(need block_size + 1)"
            )
        self.tokens = tokens
        self.block_size = block_size
        self.stride = stride

    def __len__(self) -> int:
        return (len(self.tokens) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {n} blocks")
        start = (i % n) * self.stride
        chunk = self.tokens[start : start + self.block_size + 1]
        if chunk.dtype != torch.long:  # e.g. a uint16 corpus kept small in memory
            chunk = chunk.long()
        return chunk[:-1], chunk[1:]  # (T,), (T,)
