"""Datasets, collators and masking for language-model training.

- ``LMBlockDataset``: (x, y) next-token windows over one long token tensor (GPT pretraining).
- ``PaddingCollator`` / ``pad_collate``: pad variable-length classification examples.
- ``mask_tokens`` and ``make_nsp_pairs``: BERT's two pretraining objectives (Devlin et al., 2019,
  https://arxiv.org/abs/1810.04805).
- ``make_date_task``, ``make_reversal_task``, ``Seq2SeqTokenizer``, ``Seq2SeqCollator``:
  generated sequence-to-sequence tasks for the encoder-decoder Transformer.

The corpus loaders live in ``llmbook_utils.corpora`` and are re-exported here.

Shape legend: B batch, T time (sequence length).
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from llmbook_utils.corpora import (  # noqa: F401  (re-exported)
    SENTIMENT_LABELS,
    Digits,
    TextCorpus,
    cache_root,
    load_digits,
    load_shakespeare,
    load_tweet_sentiment,
    strip_gutenberg,
)

IGNORE_INDEX = -100  # label value that PyTorch's cross-entropy skips by default


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
    seqs = [torch.as_tensor(ex["input_ids"], dtype=torch.long)[:max_length] for ex in examples]
    lengths = [len(s) for s in seqs]
    if min(lengths) == 0:
        raise ValueError(f"empty input_ids in the batch (lengths {lengths})")
    out = {
        "input_ids": torch.full((len(seqs), max(lengths)), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros(len(seqs), max(lengths), dtype=torch.long),
    }
    has_types = any("token_type_ids" in ex for ex in examples)
    if has_types:
        out["token_type_ids"] = torch.zeros(len(seqs), max(lengths), dtype=torch.long)
    for row, (seq, ex) in enumerate(zip(seqs, examples, strict=True)):
        out["input_ids"][row, : len(seq)] = seq
        out["attention_mask"][row, : len(seq)] = 1
        if has_types:
            types = torch.as_tensor(ex.get("token_type_ids", []), dtype=torch.long)[:max_length]
            out["token_type_ids"][row, : len(types)] = types
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
        with ``-100`` (ignored by cross-entropy) everywhere else. Same shape as ``input_ids``.
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


# ---------------------------------------------------------------------------------------------
# Generated sequence-to-sequence tasks
# ---------------------------------------------------------------------------------------------

MONTHS = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]  # fmt: skip
DATE_FORMATS = (
    "{month} {d}, {yyyy}",  # march 3, 1998
    "{Month} {d}, {yyyy}",  # March 3, 1998
    "{mm}/{dd}/{yyyy}",  # 03/03/1998 (month first, US style)
    "{d} {Mon} {yyyy}",  # 3 Mar 1998
    "{d} {month} {yyyy}",  # 3 march 1998
    "{Mon} {d} {yyyy}",  # Mar 3 1998
    "{dd}.{mm}.{yyyy}",  # 03.03.1998 (day first, European style)
    "{yyyy}/{mm}/{dd}",  # 1998/03/03
)


def make_date_task(
    n: int, seed: int = 0, start_year: int = 1900, end_year: int = 2099
) -> list[tuple[str, str]]:
    """Date normalisation: a date written in one of 8 human formats -> ``YYYY-MM-DD``.

    Args:
        n: number of examples.
        seed: seed of the dates and formats.
        start_year, end_year: the range of years (inclusive).

    Returns:
        ``n`` pairs such as ``("march 3, 1998", "1998-03-03")``.
    """
    if n < 1 or start_year > end_year:
        raise ValueError(f"n={n} must be >= 1 and start_year={start_year} <= end_year={end_year}")
    rng = random.Random(seed)
    first = datetime.date(start_year, 1, 1).toordinal()
    last = datetime.date(end_year, 12, 31).toordinal()
    pairs = []
    for _ in range(n):
        date = datetime.date.fromordinal(rng.randint(first, last))
        month = MONTHS[date.month - 1]
        fields = {
            "month": month,
            "Month": month.capitalize(),
            "Mon": month[:3].capitalize(),
            "d": date.day,
            "dd": f"{date.day:02d}",
            "mm": f"{date.month:02d}",
            "yyyy": f"{date.year:04d}",
        }
        pairs.append((rng.choice(DATE_FORMATS).format(**fields), date.isoformat()))
    return pairs


def make_reversal_task(
    n: int, seed: int = 0, min_len: int = 3, max_len: int = 12, alphabet: str = "abcdefghij"
) -> list[tuple[str, str]]:
    """String reversal: a random string -> the same string backwards.

    Args:
        n: number of examples.
        seed: seed of the strings.
        min_len, max_len: the length range (inclusive).
        alphabet: the characters to draw from.

    Returns:
        ``n`` pairs such as ``("abcj", "jcba")``.
    """
    if n < 1 or not 1 <= min_len <= max_len or not alphabet:
        raise ValueError(
            f"need n={n} >= 1, 1 <= min_len={min_len} <= max_len={max_len} and a non-empty "
            f"alphabet={alphabet!r}"
        )
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        s = "".join(rng.choices(alphabet, k=rng.randint(min_len, max_len)))
        pairs.append((s, s[::-1]))
    return pairs


class Seq2SeqTokenizer:
    """Characters plus ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, for generated tasks.

    Args:
        chars: the characters of the vocabulary (any iterable; duplicates are ignored).
    """

    SPECIALS = ("<pad>", "<bos>", "<eos>")
    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, chars: Iterable[str]) -> None:
        self.itos = [*self.SPECIALS, *sorted(set(chars))]
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Seq2SeqTokenizer:
        """The vocabulary of all characters of sources and targets."""
        return cls(c for src, tgt in pairs for c in src + tgt)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters {unknown} are not in the vocabulary")
        ids = [self.stoi[c] for c in text]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: Iterable[int]) -> str:
        """Characters up to the first ``<eos>``; ``<pad>`` and ``<bos>`` are skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i >= len(self.SPECIALS):
                out.append(self.itos[i])
        return "".join(out)


class Seq2SeqCollator:
    """Turn (source, target) string pairs into padded ``(src, tgt_in, tgt_out)`` tensors.

    ``tgt_in`` is ``<bos>`` + target (the decoder input, teacher forcing) and ``tgt_out`` is
    target + ``<eos>`` (what to predict); all three are padded with ``pad_id``, which the
    Transformer masks out of attention and ignores in the loss.

    Args:
        tokenizer: a ``Seq2SeqTokenizer``.
    """

    def __init__(self, tokenizer: Seq2SeqTokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: Sequence[tuple[str, str]]) -> tuple[Tensor, Tensor, Tensor]:
        if len(batch) == 0:
            raise ValueError("cannot collate an empty batch")
        tok = self.tokenizer
        src = [tok.encode(s) for s, _ in batch]
        tgt = [tok.encode(t) for _, t in batch]
        tgt_in = [[tok.bos_id, *t] for t in tgt]
        tgt_out = [[*t, tok.eos_id] for t in tgt]
        return _pad(src, tok.pad_id), _pad(tgt_in, tok.pad_id), _pad(tgt_out, tok.pad_id)


def _pad(seqs: list[list[int]], pad_id: int) -> Tensor:
    """(B, T_max) tensor of right-padded sequences."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out
