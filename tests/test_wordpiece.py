"""WordPiece from scratch against transformers' BertTokenizerFast on MiniLM's vocabulary."""

from __future__ import annotations

import pytest

from llmbook_utils.corpora import load_shakespeare
from llmbook_utils.hf import local_model_dir
from llmbook_utils.wordpiece import WordPieceTokenizer, normalize, pre_tokenize

# Lines that exercise every rule: accents, CJK, control and zero-width characters, ASCII
# symbols that Unicode calls S* but BERT calls punctuation, long and unknown words.
HARD_LINES = [
    "Héllo,\tWORLD!! naïve café 你好，世界。 日本語 ﬁne ½ x²",
    "a" * 101,
    "\x00\u200b zero-width\x07bell\r\nnewline",
    "İstanbul ǅ ß Ωmega",
    "tokenization unaffable unbelievably",
    "$5^2`~ — “quotes” … ¿qué?",
    "😀 emoji and \u0301 a lone accent",
    "",
]


@pytest.fixture(scope="module")
def tokenizers_pair():
    from transformers import BertTokenizerFast

    folder = local_model_dir("minilm")
    return WordPieceTokenizer.from_vocab_file(
        folder / "vocab.txt"
    ), BertTokenizerFast.from_pretrained(str(folder))


def test_normalize_and_pre_tokenize_rules():
    assert normalize("Héllo,\t世界") == "hello,  世  界 "
    assert normalize("Héllo", lowercase=False) == "Héllo"
    assert pre_tokenize("don't stop!") == ["don", "'", "t", "stop", "!"]
    assert pre_tokenize("a$b") == ["a", "$", "b"]


def test_wordpiece_equals_bert_tokenizer_fast(tokenizers_pair):
    ours, lib = tokenizers_pair
    assert ours.vocab_size == len(lib) == 30_522
    lines = [line for line in load_shakespeare().validation.splitlines() if line.strip()]
    lines = lines[:10_000] + HARD_LINES
    expected = lib(lines, add_special_tokens=False).input_ids
    mismatches = [
        line for line, ids in zip(lines, expected, strict=True) if ours.encode(line) != ids
    ]
    assert mismatches == []
    text = "Tokenization of unaffable words."
    assert ours.encode(text, add_special_tokens=True) == lib(text).input_ids
    assert ours.tokenize(text) == lib.tokenize(text)
    ids = lib(text, add_special_tokens=False).input_ids
    # The library's decoder also removes the space before punctuation; ours only joins "##".
    assert ours.decode(ids) == "tokenization of unaffable words ."
    assert lib.decode(ids) == "tokenization of unaffable words."


def test_wordpiece_greedy_longest_match_and_errors():
    tok = WordPieceTokenizer(["[UNK]", "un", "una", "##ff", "##able", "##a", "##b"])
    assert tok.tokenize("unaffable") == ["una", "##ff", "##able"]  # longest first: una, not un
    assert tok.tokenize("unx") == ["[UNK]"]  # one uncoverable piece: the whole word is unknown
    with pytest.raises(ValueError, match="unk_token"):
        WordPieceTokenizer(["a"])
    with pytest.raises(ValueError, match="id 99"):
        tok.decode([99])
