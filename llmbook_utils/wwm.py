"""Whole-word masking: BERT's masked-language-model corruption applied to words, not tokens.

WordPiece splits rare words into pieces (``"unkindness"`` -> ``un ##kind ##ness``). Masking
one piece of a word and leaving its neighbours visible makes the task easy: the model completes
``un [MASK] ##ness`` from spelling, not from the sentence. Whole-word masking (the BERT authors'
update of May 2019, https://github.com/google-research/bert; Cui et al., 2021,
https://arxiv.org/abs/1906.08101 for Chinese) selects *words* with probability ``mlm_prob`` and
corrupts all of their pieces together: 80% of the selected words become ``[MASK]`` in every
piece, 10% random tokens, 10% stay unchanged.

- ``word_ids_from_tokens``: word numbers from WordPiece tokens (``##`` continues a word).
- ``whole_word_mask``: the corruption, given the word number of every token.

Shape legend: B batch, T time (sequence length).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from llmbook_utils.collate import IGNORE_INDEX


def word_ids_from_tokens(
    tokens: Sequence[str], special_tokens: Iterable[str] = ("[CLS]", "[SEP]", "[PAD]", "[MASK]")
) -> list[int]:
    """The word number of each WordPiece token; -1 for special tokens.

    A token that starts with ``##`` continues the word before it; any other token starts a
    new word. Args: ``tokens`` of one sequence, and the special tokens to leave out.
    """
    special = set(special_tokens)
    word_ids, word = [], -1
    for i, token in enumerate(tokens):
        if token in special:
            word_ids.append(-1)
            continue
        continues = token.startswith("##") and i > 0 and tokens[i - 1] not in special
        word += 0 if continues else 1
        word_ids.append(word)
    return word_ids


def whole_word_mask(
    input_ids: Tensor,
    word_ids: Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_ids: Iterable[int],
    mlm_prob: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Select whole words with probability ``mlm_prob`` and corrupt all of their tokens.

    A selected word becomes ``[MASK]`` in all its pieces with probability ``mask_replace_prob``,
    random tokens with probability ``random_replace_prob``, and stays unchanged otherwise.
    ``mask_replace_prob=1.0, random_replace_prob=0.0`` is the corruption of ``transformers``'
    ``DataCollatorForLanguageModeling(whole_word_mask=True)``.

    Args:
        input_ids: (B, T) or (T,) token ids; not modified.
        word_ids: same shape, the word number of each token within its row (any integers >= 0;
            tokens of one word share it), -1 for tokens never selected (special, padding).
        vocab_size: the vocabulary the random tokens are drawn from.
        mask_token_id: the ``[MASK]`` id.
        special_ids: ids a random replacement never takes (``[CLS]``, ``[SEP]``, padding).
        mlm_prob: the probability that a word is selected.
        mask_replace_prob, random_replace_prob: the split of the selected words.
        generator: a ``torch.Generator`` for reproducible masks.

    Returns:
        ``(inputs, labels)`` as ``masking.mask_tokens``: the corrupted ids, and the original
        ids at selected tokens with ``IGNORE_INDEX`` (-100) everywhere else.
    """
    if word_ids.shape != input_ids.shape:
        raise ValueError(
            f"word_ids shape {tuple(word_ids.shape)} != input_ids shape {tuple(input_ids.shape)}"
        )
    if not 0.0 < mlm_prob < 1.0:
        raise ValueError(f"mlm_prob={mlm_prob} must be in (0, 1)")
    if (
        mask_replace_prob < 0
        or random_replace_prob < 0
        or mask_replace_prob + random_replace_prob > 1
    ):
        raise ValueError(
            f"mask_replace_prob={mask_replace_prob} and random_replace_prob={random_replace_prob}"
            " must be >= 0 and sum to at most 1"
        )
    squeeze = input_ids.dim() == 1
    ids, words = (input_ids[None], word_ids[None]) if squeeze else (input_ids, word_ids)
    device = ids.device
    n_words = int(words.max().item()) + 1 if words.numel() else 0
    # One number per (row, word): the word's slot in a flat table of B * n_words words.
    slot = torch.arange(ids.size(0), device=device)[:, None] * n_words + words.clamp(min=0)
    real = words >= 0  # (B, T): tokens that belong to a word

    def per_word(p: float) -> Tensor:
        u = torch.rand(ids.size(0) * max(n_words, 1), generator=generator, device=device)
        return (u < p)[slot] & real  # (B, T): the word's coin, copied to each of its tokens

    selected = per_word(mlm_prob)
    labels = ids.masked_fill(~selected, IGNORE_INDEX)
    action = torch.rand(ids.size(0) * max(n_words, 1), generator=generator, device=device)[slot]
    to_mask = selected & (action < mask_replace_prob)
    to_random = selected & (action >= mask_replace_prob)
    to_random &= action < mask_replace_prob + random_replace_prob

    special = torch.tensor(sorted({*special_ids, mask_token_id}), dtype=torch.long, device=device)
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=device)
    allowed[special[special < vocab_size]] = False
    pool = allowed.nonzero().squeeze(1)  # ids a random replacement may take
    pick = torch.randint(len(pool), ids.shape, generator=generator, device=device)
    inputs = ids.masked_fill(to_mask, mask_token_id)
    inputs = torch.where(to_random, pool[pick], inputs)
    if squeeze:
        return inputs[0], labels[0]
    return inputs, labels
