"""Padding: variable-length examples into rectangular batches.

- ``pad_sequences``: the one padding routine (right padding, plus the attention mask).
- ``pad_collate`` / ``PaddingCollator``: dict batches for classification models.
- ``IGNORE_INDEX``: the label value cross-entropy skips; ``token_cross_entropy``: the mean
  loss over every labelled position of a (B, T) batch.

``llmbook_utils.data`` re-exports all of them.

Shape legend: B batch, T time (sequence length).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100  # label value that PyTorch's cross-entropy skips by default


def token_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of (B, T, V) logits against (B, T) targets, skipping ``IGNORE_INDEX``.

    Raises:
        ValueError: if ``targets`` is not shaped like the logits without their last axis.
    """
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets shape {tuple(targets.shape)} != idx shape {tuple(logits.shape[:-1])}"
        )
    return F.cross_entropy(
        logits.flatten(0, 1),  # (B, T, V) -> (B*T, V)
        targets.flatten(),  # (B, T) -> (B*T,)
        ignore_index=IGNORE_INDEX,
    )


def pad_sequences(
    seqs: Sequence[Sequence[int] | Tensor], pad_id: int = 0, max_length: int | None = None
) -> tuple[Tensor, Tensor]:
    """Right-pad integer sequences into one (B, T) tensor, T the longest (truncated) length.

    Args:
        seqs: B sequences of ids (lists or 1-D tensors).
        pad_id: id written into padded positions.
        max_length: truncate longer sequences to this many tokens.

    Returns:
        ``(ids, attention_mask)``, both (B, T) int64; the mask is 1 at real tokens and 0 at
        padding.
    """
    if len(seqs) == 0:
        raise ValueError("cannot pad an empty list of sequences")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length={max_length} must be >= 1")
    rows = [torch.as_tensor(s, dtype=torch.long)[:max_length] for s in seqs]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros(len(rows), width, dtype=torch.long)  # (B, T)
    for row, seq in enumerate(rows):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def pad_collate(
    batch: Sequence[Mapping | Sequence], pad_id: int = 0, max_length: int | None = None
) -> dict[str, Tensor]:
    """Pad a list of variable-length examples into one batch (padding on the right).

    Each example is a dict with ``input_ids`` (and optionally ``token_type_ids`` and
    ``label``/``labels``; other keys such as ``text`` are dropped), or a tuple
    ``(input_ids, label)``.

    Args:
        batch: the examples.
        pad_id: id written into padded positions.
        max_length: truncate longer sequences to this many tokens.

    Returns:
        ``{"input_ids": (B, T), "attention_mask": (B, T) with 1 = real token, 0 = padding,
        "token_type_ids": (B, T) if given, "labels": (B,) if given}``, all int64; a dict, so
        ``model(**batch)`` works for ``BertForSequenceClassification``.
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    examples = [
        dict(ex) if isinstance(ex, Mapping) else {"input_ids": ex[0], "labels": ex[1]}
        for ex in batch
    ]
    for ex in examples:
        if "input_ids" not in ex:
            raise ValueError(f"example has no 'input_ids': keys {sorted(ex)}")
        if "label" in ex:
            ex["labels"] = ex.pop("label")
    lengths = [len(ex["input_ids"][:max_length]) for ex in examples]
    if min(lengths) == 0:
        raise ValueError(f"empty input_ids in the batch (lengths {lengths})")
    input_ids, attention_mask = pad_sequences(
        [ex["input_ids"] for ex in examples], pad_id, max_length
    )
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if any("token_type_ids" in ex for ex in examples):
        types, _ = pad_sequences([ex.get("token_type_ids", []) for ex in examples], 0, max_length)
        out["token_type_ids"] = F.pad(types, (0, input_ids.size(1) - types.size(1)))  # (B, T)
    if "labels" in examples[0]:
        out["labels"] = torch.as_tensor([ex["labels"] for ex in examples], dtype=torch.long)
    return out


class PaddingCollator:
    """``pad_collate`` with a fixed ``pad_id`` (a picklable ``collate_fn`` for DataLoaders).

    Args:
        pad_id: the tokenizer's padding id (``tokenizer.pad_token_id`` for Hugging Face ones).
        max_length: truncate longer sequences to this many tokens.
    """

    def __init__(self, pad_id: int = 0, max_length: int | None = None) -> None:
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length={max_length} must be >= 1")
        self.pad_id = pad_id
        self.max_length = max_length

    def __call__(self, batch: Sequence[Mapping | Sequence]) -> dict[str, Tensor]:
        return pad_collate(batch, self.pad_id, self.max_length)
