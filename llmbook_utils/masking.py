"""BERT's two pretraining objectives: masked-language-model corruption and sentence pairs.

- ``mask_tokens``: select 15% of the tokens, then replace 80% of them by ``[MASK]``, 10% by a
  random token and keep 10% (Devlin et al., 2019, https://arxiv.org/abs/1810.04805).
- ``make_nsp_pairs``: next-sentence-prediction pairs, half true successors, half random.

``llmbook_utils.data`` re-exports both.

Shape legend: B batch, T time (sequence length).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from llmbook_utils.collate import IGNORE_INDEX


def mask_tokens(
    input_ids: Tensor,
    vocab_size: int,
    mask_token_id: int,
    special_ids: Iterable[int],
    mlm_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's masked-language-model corruption: select 15%, then 80/10/10.

    Each token that is not special is selected with probability ``mlm_prob``. Of the selected
    tokens 80% become ``mask_token_id``, 10% a random non-special token and 10% stay unchanged;
    the model must predict the original token at every selected position.

    Args:
        input_ids: (B, T) or (T,) token ids; not modified.
        vocab_size: size of the vocabulary the random tokens are drawn from.
        mask_token_id: the ``[MASK]`` id.
        special_ids: ids never selected: include ``[CLS]``, ``[SEP]`` and the padding id.
        mlm_prob: the selection probability.
        generator: a ``torch.Generator`` for reproducible masks.

    Returns:
        ``(inputs, labels)``: the corrupted ids, and the original ids at selected positions
        with ``IGNORE_INDEX`` (-100, skipped by cross-entropy) everywhere else. Same shape as
        ``input_ids``.
    """
    if not 0.0 < mlm_prob < 1.0:
        raise ValueError(f"mlm_prob={mlm_prob} must be in (0, 1)")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id={mask_token_id} is outside vocab_size={vocab_size}")
    device = input_ids.device
    special = torch.tensor(sorted({*special_ids, mask_token_id}), dtype=torch.long, device=device)
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=device)
    allowed[special[special < vocab_size]] = False
    random_pool = allowed.nonzero().squeeze(1)  # ids a "random token" may take
    if len(random_pool) == 0:
        raise ValueError(f"every id in vocab_size={vocab_size} is special")

    def coin(p: float) -> Tensor:
        u = torch.rand(input_ids.shape, generator=generator, device=device)
        return u < p

    selectable = ~torch.isin(input_ids, special)
    selected = coin(mlm_prob) & selectable
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    to_mask = selected & coin(0.8)
    to_random = selected & ~to_mask & coin(0.5)  # half of the remaining 20%
    pick = torch.randint(len(random_pool), input_ids.shape, generator=generator, device=device)
    inputs = input_ids.masked_fill(to_mask, mask_token_id)
    inputs = torch.where(to_random, random_pool[pick], inputs)
    return inputs, labels


def make_nsp_pairs(
    documents: Sequence[Sequence[str]] | Sequence[str], seed: int = 0
) -> list[tuple[str, str, int]]:
    """Sentence pairs for next-sentence prediction: half true successors, half random.

    For every pair of consecutive sentences (a, b) of a document, a fair coin keeps b
    (``is_next = 1``) or replaces it with a random sentence from another document
    (``is_next = 0``; from elsewhere in the same document when there is only one).
    Note that Hugging Face's ``BertForPreTraining`` uses the opposite label (0 = is next).

    Args:
        documents: a list of documents, each a list of sentences; or one list of sentences.
        seed: seed of the coin flips and the random sentences.

    Returns:
        A list of ``(a, b, is_next)``.
    """
    if len(documents) > 0 and isinstance(documents[0], str):
        documents = [documents]
    documents = [list(doc) for doc in documents if len(doc) > 0]
    n_sentences = sum(len(doc) for doc in documents)
    if not any(len(doc) >= 2 for doc in documents) or n_sentences < 3:
        raise ValueError(
            f"need a document with >= 2 sentences and >= 3 sentences in all; got "
            f"{len(documents)} documents with {n_sentences} sentences"
        )
    rng = random.Random(seed)
    pairs = []
    for d, doc in enumerate(documents):
        for i in range(len(doc) - 1):
            if rng.random() < 0.5:
                pairs.append((doc[i], doc[i + 1], 1))
                continue
            while True:  # a random sentence that is not the true successor (nor a itself)
                other = rng.randrange(len(documents))
                if len(documents) > 1 and other == d:
                    continue
                j = rng.randrange(len(documents[other]))
                if other != d or j not in (i, i + 1):
                    break
            pairs.append((doc[i], documents[other][j], 0))
    return pairs
