"""WordPiece encoding, written from scratch: BERT's tokenizer without the library.

BERT (Devlin et al., 2019, https://arxiv.org/abs/1810.04805) and the MiniLM encoder of
chapter 9 read text in three stages, each reproduced here in plain Python:

1. **Normalise** (``normalize``): drop control characters, turn every whitespace into a space,
   put spaces around CJK ideographs (so Chinese is split into characters), strip accents
   (Unicode NFD, then remove the combining marks) and lowercase.
2. **Pre-tokenize** (``pre_tokenize``): split on whitespace, and make every punctuation
   character a word of its own.
3. **WordPiece** (``WordPieceTokenizer.encode_word``): greedy longest-match-first over the
   vocabulary (Wu et al., 2016, https://arxiv.org/abs/1609.08144): take the longest prefix of
   the word that is in the vocabulary, then the longest continuation marked ``##``, and so on;
   a word that cannot be covered becomes ``[UNK]`` as a whole.

With the uncased settings this equals ``transformers``' ``BertTokenizerFast`` (Rust
``tokenizers``) token for token; ``tests/test_wordpiece.py`` checks it on MiniLM's vocabulary.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

# The CJK ideograph blocks that BERT splits into single characters (its
# ``_is_chinese_char``): the unified ideographs, their extensions A-F and the
# compatibility ideographs. Hiragana, katakana and hangul are not in the list.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (a Chinese character, or a kanji/hanja)."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def is_punctuation(char: str) -> bool:
    """BERT's punctuation: every non-alphanumeric printable ASCII symbol, or Unicode ``P*``."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True  # ASCII symbols such as $, ^ and ` count, though Unicode calls them S*
    return unicodedata.category(char).startswith("P")


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    if char in "\t\n\r":
        return False  # whitespace, not control, for BERT
    return unicodedata.category(char) in ("Cc", "Cf", "Cn", "Co", "Cs")


def normalize(text: str, lowercase: bool = True, strip_accents: bool | None = None) -> str:
    """BERT's normaliser: clean, space out CJK ideographs, strip accents, lowercase.

    Args:
        text: any string.
        lowercase: lowercase the text (the "uncased" models).
        strip_accents: remove combining marks after NFD; ``None`` follows ``lowercase``.

    Returns:
        The normalised string, e.g. ``"Héllo,\\t世界"`` -> ``"hello,  世  界 "``.
    """
    out = []
    for char in text:
        if char in ("\x00", "\ufffd") or _is_control(char):
            continue
        if _is_whitespace(char):
            out.append(" ")
        elif is_cjk(char):
            out.append(f" {char} ")
        else:
            out.append(char)
    text = "".join(out)
    if lowercase if strip_accents is None else strip_accents:
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return text.lower() if lowercase else text


def pre_tokenize(text: str) -> list[str]:
    """Split a normalised text on whitespace and isolate each punctuation character.

    Example:
        >>> pre_tokenize("don't stop!")
        ['don', "'", 't', 'stop', '!']
    """
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for char in chunk:
            if is_punctuation(char):
                if current:
                    words.append(current)
                words.append(char)
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


class WordPieceTokenizer:
    """BERT's tokenizer: ``normalize``, ``pre_tokenize``, then greedy longest-match WordPiece.

    Args:
        vocab: the token strings in id order (``vocab.txt``, one token a line); continuation
            pieces carry the prefix ``##``.
        lowercase: the uncased normalisation (MiniLM and ``bert-base-uncased`` use it).
        unk_token: the token for a word the vocabulary cannot cover.
        max_chars_per_word: longer words become ``unk_token`` directly (BERT: 100).

    Example:
        >>> tok = WordPieceTokenizer(["[UNK]", "token", "##ization", "##s"])
        >>> tok.tokenize("Tokenization tokens")
        ['token', '##ization', 'token', '##s']
    """

    def __init__(
        self,
        vocab: Iterable[str],
        lowercase: bool = True,
        unk_token: str = "[UNK]",
        max_chars_per_word: int = 100,
        prefix: str = "##",
    ) -> None:
        self.itos: list[str] = list(vocab)
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        if unk_token not in self.vocab:
            raise ValueError(f"unk_token={unk_token!r} is not in the vocabulary")
        if max_chars_per_word < 1:
            raise ValueError(f"max_chars_per_word={max_chars_per_word} must be >= 1")
        self.lowercase = lowercase
        self.unk_token = unk_token
        self.max_chars_per_word = max_chars_per_word
        self.prefix = prefix

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike, lowercase: bool = True) -> WordPieceTokenizer:
        """Read a BERT ``vocab.txt`` (the line number is the id)."""
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return cls(lines, lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode_word(self, word: str) -> list[str]:
        """Greedy longest-match-first: the longest vocabulary prefix, then ``##`` pieces."""
        if len(word) > self.max_chars_per_word:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            # Try the longest remaining substring first and shorten it until it is a token.
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    pieces.append(piece)
                    start = end
                    break
            else:  # no prefix of the rest is a token: the whole word is unknown
                return [self.unk_token]
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text``, without ``[CLS]`` and ``[SEP]``."""
        words = pre_tokenize(normalize(text, lowercase=self.lowercase))
        return [piece for word in words for piece in self.encode_word(word)]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids; with ``add_special_tokens``, wrapped in ``[CLS] ... [SEP]`` as in BERT."""
        ids = [self.vocab[t] for t in self.tokenize(text)]
        if add_special_tokens:
            ids = [self.vocab["[CLS]"], *ids, self.vocab["[SEP]"]]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Join the pieces: ``##`` pieces attach to the previous one, others get a space."""
        words: list[str] = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
            token = self.itos[i]
            if token.startswith(self.prefix) and words:
                words[-1] += token[len(self.prefix) :]
            else:
                words.append(token)
        return " ".join(words)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]
