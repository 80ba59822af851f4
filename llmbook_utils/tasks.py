"""Generated sequence-to-sequence tasks for the encoder-decoder Transformer (chapter 5).

- ``make_date_task``: a date in one of 8 human formats -> ``YYYY-MM-DD``.
- ``make_reversal_task``: a random string -> the same string backwards.
- ``Seq2SeqTokenizer``: characters plus ``<pad>``, ``<bos>``, ``<eos>``.
- ``Seq2SeqCollator``: (source, target) pairs -> padded ``(src, tgt_in, tgt_out)`` tensors.

Generated data are unlimited, free of licences and exactly checkable, so a small model can be
trained and evaluated on them in minutes. ``llmbook_utils.data`` re-exports all of them.

Shape legend: B batch, S source length, T target length.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterable, Sequence

from torch import Tensor

from llmbook_utils.collate import pad_sequences

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
        src_ids, _ = pad_sequences(src, tok.pad_id)  # (B, S)
        tgt_in_ids, _ = pad_sequences(tgt_in, tok.pad_id)  # (B, T)
        tgt_out_ids, _ = pad_sequences(tgt_out, tok.pad_id)  # (B, T)
        return src_ids, tgt_in_ids, tgt_out_ids
