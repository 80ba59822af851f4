"""Tokenizers: characters, byte-level BPE written from scratch, and BPE with the library.

- ``CharTokenizer`` (defined in ``char_tokenizer.py``): one id per character, the tokenizer
  of nanoGPT's Shakespeare model.
- ``BPETokenizer``: byte-level byte-pair encoding (Sennrich et al., 2016,
  https://arxiv.org/abs/1508.07909) with GPT-2's pre-tokenization (Radford et al., 2019), in
  plain Python. Its training reproduces the Hugging Face ``tokenizers`` library's
  ``BpeTrainer`` merge for merge, including how ties are broken, so the two can be compared.
- ``train_bpe``: the same tokenizer trained by the ``tokenizers`` library (Rust, fast).

All three follow the book's tokenizer protocol: ``encode(text) -> list[int]``,
``decode(ids) -> str`` and ``vocab_size`` (``train_bpe`` returns the library's
``tokenizers.Tokenizer``, whose ``encode`` returns an ``Encoding``: use ``.ids``).
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from llmbook_utils.char_tokenizer import CharTokenizer  # re-exported: the book imports it here

if TYPE_CHECKING:
    import tokenizers

# GPT-2's pre-tokenizer: contractions, letters, digits, other symbols, each with at most one
# leading space, and runs of whitespace. Merges never cross these boundaries.
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

Pair = tuple[int, int]
__all__ = ["GPT2_SPLIT_PATTERN", "BPETokenizer", "CharTokenizer", "bytes_to_unicode",
           "library_merges", "train_bpe"]  # fmt: skip


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters.

    Printable Latin-1 bytes map to themselves; the others (controls, space, ...) to the
    characters from U+0100 on, so every token is a readable string (a space shows as ``Ġ``).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _merge_word(word: list[int], pair: Pair, new_id: int) -> list[tuple[Pair, int]]:
    """Replace every ``pair`` in ``word`` (in place) and return the pair-count changes."""
    left, right = pair
    changes: list[tuple[Pair, int]] = []
    i = 0
    while i < len(word):
        if word[i] == left and i + 1 < len(word) and word[i + 1] == right:
            if i > 0:
                changes += [((word[i - 1], left), -1), ((word[i - 1], new_id), 1)]
            word[i : i + 2] = [new_id]
            if i < len(word) - 1:
                changes += [((right, word[i + 1]), -1), ((new_id, word[i + 1]), 1)]
        i += 1
    return changes


class BPETokenizer:
    """Byte-level BPE, trained and applied in plain Python.

    The vocabulary starts with the special tokens, then the 256 byte symbols (sorted by their
    ``bytes_to_unicode`` character), then one token per merge, so ids match the ``tokenizers``
    library's. Train with ``BPETokenizer().train(text, vocab_size)``.

    Args:
        special_tokens: strings such as ``"<|endoftext|>"`` that get the first ids and are
            never split when encoding.
    """

    def __init__(self, special_tokens: Sequence[str] = ()) -> None:
        self.special_tokens = list(dict.fromkeys(special_tokens))
        alphabet = sorted(bytes_to_unicode().values())
        self.vocab: dict[str, int] = {}
        for token in [*self.special_tokens, *alphabet]:
            self.vocab.setdefault(token, len(self.vocab))
        self.merges: list[tuple[str, str]] = []
        self._update_lookups()

    # -- training ------------------------------------------------------------------------

    def train(
        self, text: str | Iterable[str], vocab_size: int, min_frequency: int = 0
    ) -> BPETokenizer:
        """Learn merges until the vocabulary has ``vocab_size`` tokens.

        Each step merges the most frequent adjacent pair of tokens, counted inside
        pre-tokenized words weighted by word frequency. Ties go to the pair with the smallest
        (left id, right id), and pair counts are refreshed lazily in a priority queue, exactly
        as in ``tokenizers``' ``BpeTrainer``, so both produce the same ordered merge list.

        Args:
            text: a string, or an iterable of strings (documents; words never span two).
            vocab_size: the target vocabulary size, including special and byte tokens.
            min_frequency: stop when the best pair occurs fewer times than this.

        Returns:
            ``self``, trained.
        """
        if vocab_size < len(self.vocab):
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the {len(self.vocab)} special and "
                "byte tokens it must contain"
            )
        texts = [text] if isinstance(text, str) else text
        word_counts = Counter(word for t in texts for word in self._pretokenize(t))
        id_to_token = list(self.vocab)
        token_to_id = dict(self.vocab)
        words = [[token_to_id[c] for c in w] for w in word_counts]
        counts = list(word_counts.values())

        # Count every adjacent pair once, remembering which words contain it.
        pair_counts: dict[Pair, int] = defaultdict(int)
        where: dict[Pair, set[int]] = defaultdict(set)
        for i, word in enumerate(words):
            for pair in itertools.pairwise(word):
                pair_counts[pair] += counts[i]
                where[pair].add(i)
        # A max-heap on (count, then smallest pair), as a min-heap on (-count, pair). Entries
        # may hold stale counts; they are corrected when they reach the top.
        tiebreak = itertools.count()
        heap = [(-pair_counts[p], p, next(tiebreak), pos) for p, pos in where.items()]
        heapq.heapify(heap)

        merged: list[tuple[Pair, int]] = []
        while len(token_to_id) < vocab_size and heap:
            neg_count, pair, _, pos = heapq.heappop(heap)
            if -neg_count != pair_counts[pair]:
                heapq.heappush(heap, (-pair_counts[pair], pair, next(tiebreak), pos))
                continue
            if -neg_count < 1 or -neg_count < min_frequency:
                break
            new_token = id_to_token[pair[0]] + id_to_token[pair[1]]
            if new_token not in token_to_id:
                token_to_id[new_token] = len(id_to_token)
                id_to_token.append(new_token)
            new_id = token_to_id[new_token]
            merged.append((pair, new_id))
            # Apply the merge in the words that contained the pair and update the counts.
            new_where: dict[Pair, set[int]] = defaultdict(set)
            for i in pos:
                for changed, delta in _merge_word(words[i], pair, new_id):
                    pair_counts[changed] += delta * counts[i]
                    if delta > 0:
                        new_where[changed].add(i)
            for p, p_pos in new_where.items():
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p, next(tiebreak), p_pos))

        # A pair merged twice keeps its last rank, as in the library's merge table.
        rank = {pair: r for r, (pair, _) in enumerate(merged)}
        ordered = sorted(rank, key=rank.get)
        self.merges = [(id_to_token[a], id_to_token[b]) for a, b in ordered]
        self.vocab = token_to_id
        self._update_lookups()
        return self

    # -- encoding ------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Split off special tokens, pre-tokenize, and apply the merges word by word."""
        ids: list[int] = []
        pieces = self._special_re.split(text) if self._special_re is not None else [text]
        for piece in pieces:
            if piece in self._special_ids:
                ids.append(self._special_ids[piece])
                continue
            for word in self._pretokenize(piece):
                ids.extend(self._encode_word(word))
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Join the tokens' bytes and decode them as UTF-8 (invalid bytes become U+FFFD)."""
        byte_of = self._byte_decoder
        out = bytearray()
        for i in ids:
            token = self.id_to_token(int(i))
            if token in self._special_ids:
                if not skip_special_tokens:
                    out += token.encode("utf-8")
            else:
                out += bytes(byte_of[c] for c in token)
        return out.decode("utf-8", errors="replace")

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < len(self._id_to_token):
            raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
        return self._id_to_token[i]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """The token strings (byte-level: a leading space shows as ``Ġ``)."""
        return [self.id_to_token(int(i)) for i in ids]

    def _pretokenize(self, text: str) -> list[str]:
        """GPT-2 split, then each piece's UTF-8 bytes as byte-level characters."""
        import regex

        byte_char = bytes_to_unicode()
        return [
            "".join(byte_char[b] for b in piece.encode("utf-8"))
            for piece in regex.findall(GPT2_SPLIT_PATTERN, text)
        ]

    def _encode_word(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        # A byte the vocabulary lacks (SmolLM2 has no symbol for 0xC0, which UTF-8 never uses)
        # is dropped, as the library does for a BPE without an unknown token.
        ids = [self.vocab[c] for c in word if c in self.vocab]
        while len(ids) > 1:
            # The lowest-ranked (earliest learned) merge applies first, everywhere in the word.
            candidates = [self._ranks[p] for p in itertools.pairwise(ids) if p in self._ranks]
            if not candidates:
                break
            rank, new_id = min(candidates)
            pair = self._pair_of_rank[rank]
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        self._cache[word] = ids
        return ids

    def _update_lookups(self) -> None:
        import regex

        self._id_to_token = [""] * len(self.vocab)
        for token, i in self.vocab.items():
            self._id_to_token[i] = token
        self._byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
        self._special_ids = {t: self.vocab[t] for t in self.special_tokens}
        self._special_re = (
            regex.compile("(" + "|".join(regex.escape(t) for t in self.special_tokens) + ")")
            if self.special_tokens
            else None
        )
        self._ranks: dict[Pair, tuple[int, int]] = {}
        self._pair_of_rank: dict[int, Pair] = {}
        for r, (a, b) in enumerate(self.merges):
            pair = (self.vocab[a], self.vocab[b])
            self._ranks[pair] = (r, self.vocab[a + b])
            self._pair_of_rank[r] = pair
        self._cache: dict[str, list[int]] = {}

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write vocabulary, merges and special tokens as JSON."""
        data = {
            "type": "byte-level-bpe",
            "special_tokens": self.special_tokens,
            "vocab": self.vocab,
            "merges": [list(m) for m in self.merges],
        }
        Path(path).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer written by ``save``."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("type") != "byte-level-bpe":
            raise ValueError(f"{path} holds a {data.get('type')!r} tokenizer, not byte-level BPE")
        tok = cls(data["special_tokens"])
        tok.vocab = {t: int(i) for t, i in data["vocab"].items()}
        tok.merges = [(a, b) for a, b in data["merges"]]
        tok._update_lookups()
        return tok

    @classmethod
    def from_merges(
        cls,
        vocab: dict[str, int],
        merges: Sequence[tuple[str, str]],
        special_tokens: Sequence[str] = (),
    ) -> BPETokenizer:
        """A pretrained byte-level BPE (GPT-2's, SmolLM2's, ...) from its vocabulary and merges.

        Byte symbols missing from ``vocab`` are allowed: such bytes are dropped when encoding.

        Args:
            vocab: token string (byte-level characters, ``Ġ`` for a space) -> id.
            merges: the ordered merge list, earliest learned first.
            special_tokens: tokens in ``vocab`` that are matched before pre-tokenization.

        Raises:
            ValueError: when a byte symbol, a special token or a merge's result is missing.
        """
        missing = [t for t in special_tokens if t not in vocab]
        missing += [
            a + b for a, b in merges if a not in vocab or b not in vocab or a + b not in vocab
        ]
        if missing:
            raise ValueError(
                f"{len(missing)} tokens are missing from the vocabulary: {missing[:5]}"
            )
        tok = cls(special_tokens)
        tok.vocab = {t: int(i) for t, i in vocab.items()}
        tok.merges = [(a, b) for a, b in merges]
        tok._update_lookups()
        return tok

    @classmethod
    def from_hf(cls, hf_tokenizer: object) -> BPETokenizer:
        """Copy the vocabulary, merges and added tokens of a byte-level BPE Hugging Face tokenizer.

        Args:
            hf_tokenizer: a ``transformers`` fast tokenizer or a ``tokenizers.Tokenizer`` whose
                model is BPE and whose pre-tokenizer is ``ByteLevel`` with GPT-2's split.

        Raises:
            ValueError: for another model type, a normalizer, or another pre-tokenizer.
        """
        backend = getattr(hf_tokenizer, "backend_tokenizer", hf_tokenizer)
        spec = json.loads(backend.to_str())
        pre = spec.get("pre_tokenizer") or {}
        if spec["model"]["type"] != "BPE" or spec.get("normalizer") is not None:
            raise ValueError(f"not a plain BPE: model {spec['model']['type']}, normalizer set")
        if (
            pre.get("type") != "ByteLevel"
            or pre.get("add_prefix_space")
            or not pre.get("use_regex")
        ):
            raise ValueError(f"pre-tokenizer {pre.get('type')!r} is not GPT-2's ByteLevel split")
        specials = [t["content"] for t in spec.get("added_tokens", [])]
        return cls.from_merges(spec["model"]["vocab"], library_merges(backend), specials)


def train_bpe(
    texts: str | Iterable[str],
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    min_frequency: int = 0,
) -> tokenizers.Tokenizer:
    """Train the same byte-level BPE as ``BPETokenizer`` with the ``tokenizers`` library.

    Args:
        texts: a string or an iterable of strings.
        vocab_size: the target vocabulary size, including special and byte tokens.
        special_tokens: tokens that get the first ids.
        min_frequency: the smallest pair count that still produces a merge.

    Returns:
        A ``tokenizers.Tokenizer``: ``tok.encode(text).ids``, ``tok.decode(ids)``,
        ``tok.get_vocab_size()``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([texts] if isinstance(texts, str) else texts, trainer=trainer)
    return tokenizer


def library_merges(tokenizer: tokenizers.Tokenizer) -> list[tuple[str, str]]:
    """The ordered merge list of a ``tokenizers`` BPE model, as ``(left, right)`` strings."""
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in merges]
