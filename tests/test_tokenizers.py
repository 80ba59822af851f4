"""Tokenizers: the from-scratch BPE against the Hugging Face ``tokenizers`` library."""

from __future__ import annotations

import pytest

from llmbook_utils.data import load_shakespeare
from llmbook_utils.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    bytes_to_unicode,
    library_merges,
    train_bpe,
)

# A fixed paragraph-sized training text (about 1,500 characters, with repeated words so that
# many pairs tie on count and the tie-breaking rule matters).
PARAGRAPH = """\
Byte pair encoding starts from single bytes and repeatedly merges the most frequent pair of
adjacent symbols into a new symbol. The merges are learned once, on a training corpus, and then
applied in the same order to any new text. Frequent words such as "the", "and" and "of" quickly
become single tokens, while rare words are split into pieces that the model has seen before.
The tokenizer never meets an unknown character: every string is a sequence of bytes, and every
byte is in the vocabulary from the start. That is why GPT-2 can read emoji, Chinese, code and
misspelled words alike. The price is that the vocabulary must be learned, and that the same
word can be tokenized differently with or without a leading space: " token" and "token" are
different tokens. Counting pairs happens inside words only, so merges never cross a space.
Let us count: the the the, and and and, of of of; tokens, tokenizer, tokenization, tokenized!
Numbers like 1998, 2024 and 3.14159 are split into digits and dots. Don't forget contractions:
we'll, you're, it's, they've, I'm, she'd. Whitespace    runs   matter\ttoo.
"""


def test_char_tokenizer_roundtrip_and_errors(tmp_path):
    tok = CharTokenizer("hello world")
    assert tok.vocab_size == len(set("hello world"))
    assert tok.itos == sorted(set("hello world"))
    ids = tok.encode("low rod")
    assert tok.decode(ids) == "low rod"
    assert tok.convert_ids_to_tokens(ids[:2]) == ["l", "o"]
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        tok.encode("hez")
    with pytest.raises(ValueError, match="99"):
        tok.decode([0, 99])
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer("")
    tok.save(tmp_path / "char.json")
    again = CharTokenizer.load(tmp_path / "char.json")
    assert again.itos == tok.itos


def test_byte_alphabet_is_gpt2s():
    mapping = bytes_to_unicode()
    assert len(mapping) == 256 and len(set(mapping.values())) == 256
    assert mapping[ord("A")] == "A" and mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ"


# (vocab size, min_frequency): a few merges, more merges, until no pair is left, and a
# frequency threshold that ends training early.
@pytest.mark.parametrize(
    ("vocab_size", "min_frequency"), [(300, 0), (400, 0), (5000, 0), (2000, 2)]
)
def test_bpe_merges_equal_tokenizers_library(vocab_size, min_frequency):
    ours = BPETokenizer().train(PARAGRAPH, vocab_size, min_frequency=min_frequency)
    lib = train_bpe(PARAGRAPH, vocab_size, min_frequency=min_frequency)
    assert len(ours.merges) > 40
    assert ours.merges == library_merges(lib)  # the ordered merge lists are identical
    assert ours.vocab == lib.get_vocab()  # and so are the token ids


def test_bpe_with_special_tokens_and_documents_equals_library():
    docs = [line for line in PARAGRAPH.splitlines() if line]
    specials = ["<|endoftext|>", "<pad>"]
    ours = BPETokenizer(specials).train(docs, 350)
    lib = train_bpe(docs, 350, special_tokens=specials)
    assert ours.merges == library_merges(lib)
    assert ours.vocab == lib.get_vocab()
    assert ours.vocab["<|endoftext|>"] == 0 and ours.vocab["<pad>"] == 1
    text = "The tokenizer meets <|endoftext|> new text: 日本語, émoji 🙂!<pad>"
    assert ours.encode(text) == lib.encode(text).ids
    assert ours.decode(ours.encode(text)) == text
    assert ours.decode(ours.encode(text), skip_special_tokens=True) == text.replace(
        "<|endoftext|>", ""
    ).replace("<pad>", "")


def test_bpe_on_shakespeare_equals_library():
    """A larger corpus: many more ties, long words, the library's lazy count updates."""
    corpus = load_shakespeare()
    text = corpus.train[:200_000]
    ours = BPETokenizer().train(text, 700)
    lib = train_bpe(text, 700)
    assert ours.merges == library_merges(lib)
    held_out = corpus.validation[:20_000]
    ids = ours.encode(held_out)
    assert ids == lib.encode(held_out).ids
    assert ours.decode(ids) == held_out == lib.decode(ids)
    assert len(ids) < 0.5 * len(held_out.encode("utf-8"))  # merges compress the text


def test_bpe_save_load_and_errors(tmp_path):
    tok = BPETokenizer(["<eos>"]).train(PARAGRAPH, 320)
    tok.save(tmp_path / "bpe.json")
    again = BPETokenizer.load(tmp_path / "bpe.json")
    assert again.merges == tok.merges and again.vocab == tok.vocab
    assert again.encode(PARAGRAPH) == tok.encode(PARAGRAPH)
    assert tok.convert_ids_to_tokens(tok.encode(" the"))[0] == "Ġthe"
    with pytest.raises(ValueError, match="vocab_size=100"):
        BPETokenizer().train(PARAGRAPH, 100)
    with pytest.raises(ValueError, match="id 5000"):
        tok.decode([5000])
    CharTokenizer("ab").save(tmp_path / "char.json")
    with pytest.raises(ValueError, match="'char'"):
        BPETokenizer.load(tmp_path / "char.json")


def test_train_bpe_returns_library_tokenizer():
    tok = train_bpe([PARAGRAPH], 300)
    assert tok.get_vocab_size() == 300
    text = "Tokens never cross a space."
    assert tok.decode(tok.encode(text).ids) == text


@pytest.fixture(scope="module")
def shakespeare():
    return load_shakespeare()


# The chapter's vocabulary sizes: from a few hundred merges to several thousand.
@pytest.mark.parametrize("vocab_size", [512, 1024, 2048, 4096])
def test_bpe_merges_equal_bpe_trainer_from_512_to_4096(shakespeare, vocab_size):
    """Chapter 6's claim: merge for merge the library's BpeTrainer with a ByteLevel split."""
    docs = shakespeare.train[:400_000].splitlines(keepends=True)
    ours = BPETokenizer().train(docs, vocab_size)
    lib = train_bpe(docs, vocab_size)
    assert len(ours.merges) == vocab_size - 256
    assert ours.merges == library_merges(lib)
    assert ours.vocab == lib.get_vocab()


def test_smollm2_merges_in_our_bpe_give_the_library_ids(shakespeare):
    """SmolLM2's 48,900 merges loaded into BPETokenizer: the same ids on held-out lines."""
    from llmbook_utils.smollm2 import load_smollm2_tokenizer

    hf = load_smollm2_tokenizer()
    ours = BPETokenizer.from_hf(hf)
    assert ours.vocab_size == len(hf) == 49_152
    lines = [line for line in shakespeare.validation.splitlines() if line.strip()]
    lines += [
        "Unicode: 你好，世界！ café naïve 🙂 \u200b x\U00050000y a\x04b",
        "<|im_start|>user\nHow many r's in 'strawberry'?<|im_end|>\n",
        "  indented code:\n\tx = 12345 + 0.5e-3  # comment\n\n\n",
    ]
    assert len(lines) >= 10_000
    library_ids = hf(lines, add_special_tokens=False).input_ids
    mismatches = [
        line for line, ids in zip(lines, library_ids, strict=True) if ours.encode(line) != ids
    ]
    assert mismatches == []
    assert ours.decode(ours.encode(lines[-3])) == hf.decode(library_ids[-3])


def test_from_merges_and_from_hf_errors():
    lib = train_bpe(PARAGRAPH, 300)
    vocab = lib.get_vocab()
    merges = library_merges(lib)
    ours = BPETokenizer.from_merges(vocab, merges)
    assert ours.encode(PARAGRAPH) == lib.encode(PARAGRAPH).ids
    with pytest.raises(ValueError, match="missing"):
        BPETokenizer.from_merges(vocab, [*merges, ("zz", "qq")])
    with pytest.raises(ValueError, match="missing"):
        BPETokenizer.from_merges(vocab, merges, special_tokens=["<eos>"])
    from tokenizers import Tokenizer, models, pre_tokenizers

    whitespace = Tokenizer(models.BPE())
    whitespace.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="ByteLevel"):
        BPETokenizer.from_hf(whitespace)
    assert BPETokenizer.from_hf(lib).merges == merges
