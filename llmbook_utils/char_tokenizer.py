"""The character tokenizer: one id per character (chapter 7's Shakespeare model).

Importable as ``llmbook_utils.tokenizers.CharTokenizer`` with the other tokenizers; it follows
their protocol: ``encode(text) -> list[int]``, ``decode(ids) -> str`` and ``vocab_size``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters seen.

    Args:
        text: the text (or any iterable of characters) that defines the vocabulary.

    Example:
        >>> tok = CharTokenizer("hello world")
        >>> tok.decode(tok.encode("hello")) == "hello"
        True
    """

    def __init__(self, text: str | Iterable[str]) -> None:
        chars = sorted(set(text))
        if not chars:
            raise ValueError("CharTokenizer needs a non-empty text to build its vocabulary")
        if any(len(c) != 1 for c in chars):
            raise ValueError(f"vocabulary entries must be single characters, got {chars[:5]!r}")
        self.itos: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Map each character to its id; an unknown character raises ``ValueError``."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            char = err.args[0]
            raise ValueError(
                f"character {char!r} (position {text.index(char)}) is not in the vocabulary "
                f"of {self.vocab_size} characters"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Map ids back to characters."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad[:5]} are outside the vocabulary [0, {self.vocab_size})")
        return "".join(self.itos[i] for i in ids)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """The character of each id (same name as Hugging Face tokenizers)."""
        return list(self.decode(ids))

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON."""
        data = {"type": "char", "chars": self.itos}
        Path(path).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        """Read a tokenizer written by ``save``."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("type") != "char":
            raise ValueError(f"{path} holds a {data.get('type')!r} tokenizer, not 'char'")
        return cls(data["chars"])
