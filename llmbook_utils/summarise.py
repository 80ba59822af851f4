"""Headline generation: a lead baseline, extractive selection with sentence embeddings, prompts.

Section 12.2 of the book writes a headline for a BBC News article three ways:

- ``lead_summary``: the first sentence (the *lead*), the classic baseline of news summarisation,
  hard to beat because journalists put the gist first (Nenkova, 2005).
- ``centroid_scores`` and ``lexrank_scores``: extractive selection. Every sentence is embedded
  (``embed_texts``: unit-length mean-pooled MiniLM vectors, as sentence-transformers computes
  them); a sentence scores by its cosine similarity to the article's mean vector (the
  *centroid*, Radev et al., 2004) or by its PageRank in the graph of sentence similarities
  (*LexRank*, Erkan and Radev, 2004, https://arxiv.org/abs/1109.2128, continuous version);
  ``pagerank`` is the power iteration, equal to ``networkx.pagerank``.
- ``headline_messages``, ``chat_generate`` and ``clean_headline``: abstractive generation with a
  chat model (SmolLM2-Instruct): the prompt as chat messages, batched greedy decoding with left
  padding, and the first line of the reply without quotes or a "Headline:" label.

Shape legend: N sentences (or texts), C embedding width, B batch, T tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from llmbook_utils.classifier import mean_pool

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

# A sentence ends at . ! or ? (maybe followed by a closing quote or bracket) before white space
# and a capital letter, a digit or an opening quote. BBC style writes "Mr" and "Dr" without a
# full stop, so abbreviations rarely cut a sentence.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(A-Z0-9])")
_LABEL = re.compile(  # "Headline:", "**Title:**", "The headline:", "Adequate headline:" ...
    r"^\s*(?:\*\*)?(?:(?:the|a|an|my|adequate|suggested|short|new)\s+)*"
    r"(?:headline|title|summary|article)\s*(?:\*\*)?\s*[:\-]\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)

HEADLINE_INSTRUCTION = (
    "Write a headline of at most {max_words} words for this news article. "
    "Reply with the headline only."
)


def split_sentences(text: str) -> list[str]:
    """Split an article into sentences: paragraphs at line breaks, then at sentence ends.

    Args:
        text: an article body; paragraphs separated by (blank) lines.

    Returns:
        The non-empty sentences in order, stripped of surrounding white space.
    """
    sentences = []
    for paragraph in text.splitlines():
        paragraph = paragraph.strip()
        if paragraph:
            sentences.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip())
    return sentences


def lead_summary(text: str, n_sentences: int = 1, max_words: int | None = None) -> str:
    """The lead baseline: the first ``n_sentences`` sentences, optionally cut to ``max_words``.

    Raises:
        ValueError: if ``n_sentences`` < 1 or ``max_words`` < 1.
    """
    if n_sentences < 1 or (max_words is not None and max_words < 1):
        raise ValueError(f"n_sentences={n_sentences} and max_words={max_words} must be >= 1")
    summary = " ".join(split_sentences(text)[:n_sentences])
    return truncate_words(summary, max_words) if max_words is not None else summary


def truncate_words(text: str, max_words: int) -> str:
    """The first ``max_words`` white-space separated words of ``text``."""
    if max_words < 1:
        raise ValueError(f"max_words={max_words} must be >= 1")
    return " ".join(text.split()[:max_words])


@torch.no_grad()
def embed_texts(
    tokenizer: PreTrainedTokenizerBase,
    encoder: nn.Module,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 128,
) -> np.ndarray:
    """Unit-length mean-pooled sentence embeddings, as sentence-transformers computes them.

    Texts are sorted by length before batching, so that a batch holds similar lengths and little
    padding; the vectors come back in the order of ``texts``.

    Args:
        tokenizer: the encoder's tokenizer (e.g. from ``load_pretrained("minilm")``).
        encoder: a ``transformers`` encoder returning ``last_hidden_state`` (B, T, C).
        texts: N texts.
        batch_size: texts per forward pass.
        max_length: longer texts are truncated to this many tokens (MiniLM was trained on 128).

    Returns:
        (N, C) float32 array of unit vectors.
    """
    if len(texts) == 0:
        raise ValueError("texts is empty")
    device = next(encoder.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")
    vectors: np.ndarray | None = None
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt").to(device)  # fmt: skip
        hidden = encoder(**enc).last_hidden_state  # (B, T, C)
        pooled = F.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1)  # (B, C)
        if vectors is None:
            vectors = np.empty((len(texts), pooled.size(-1)), dtype=np.float32)
        vectors[idx] = pooled.float().cpu().numpy()
    assert vectors is not None
    return vectors


def centroid_scores(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sentence to the article's centroid (mean sentence vector).

    Args:
        embeddings: (N, C) sentence vectors (any length; they are normalised here).

    Returns:
        (N,) scores in [-1, 1]; the most central sentence has the highest.
    """
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"embeddings must be a non-empty (N, C) array, got {embeddings.shape}")
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)  # (N, C)
    centroid = unit.mean(axis=0)  # (C,)
    return unit @ centroid / max(float(np.linalg.norm(centroid)), 1e-12)  # (N,)


def pagerank(
    weights: np.ndarray, damping: float = 0.85, tol: float = 1e-10, max_iter: int = 1000
) -> np.ndarray:
    """PageRank of a weighted directed graph by power iteration.

    With W the (N, N) non-negative weights (``weights[i, j]``: edge i -> j) and P the row-
    normalised transition matrix, the scores solve r = (1 - d) / N + d (P^T r + s), where the
    mass s of dangling nodes (rows without weight) is spread uniformly; this is
    ``networkx.pagerank``'s definition.

    Args:
        weights: (N, N) non-negative edge weights.
        damping: d, the probability of following an edge rather than jumping anywhere.
        tol: stop when the L1 change of r falls below N * tol (networkx's rule).
        max_iter: the most iterations.

    Returns:
        (N,) scores summing to 1.
    """
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1] or (weights < 0).any():
        raise ValueError(f"weights must be a non-negative (N, N) matrix, got {weights.shape}")
    if not 0 < damping < 1:
        raise ValueError(f"damping={damping} must be in (0, 1)")
    n = weights.shape[0]
    out = weights.sum(axis=1)  # (N,) weighted out-degree
    dangling = out == 0
    transition = np.divide(weights, out[:, None], out=np.zeros_like(weights, dtype=float),
                           where=~dangling[:, None])  # fmt: skip
    r = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        new = damping * (r @ transition + r[dangling].sum() / n) + (1 - damping) / n
        if np.abs(new - r).sum() < n * tol:
            return new
        r = new
    return r


def lexrank_scores(embeddings: np.ndarray, damping: float = 0.85) -> np.ndarray:
    """Continuous LexRank: PageRank over the graph of cosine similarities between sentences.

    Negative similarities are clipped to 0 and self-loops removed, as in Erkan and Radev (2004).

    Args:
        embeddings: (N, C) sentence vectors.
        damping: PageRank's damping factor.

    Returns:
        (N,) scores summing to 1.
    """
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"embeddings must be a non-empty (N, C) array, got {embeddings.shape}")
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    sim = np.clip(unit @ unit.T, 0.0, None)  # (N, N)
    np.fill_diagonal(sim, 0.0)
    return pagerank(sim.astype(np.float64), damping=damping)


def headline_messages(article: str, max_words: int = 10, max_article_words: int = 150) -> list:
    """The chat messages that ask a chat model for a headline.

    Args:
        article: the article body.
        max_words: the headline length asked for.
        max_article_words: the article is cut to its first words (the prompt stays short: the
            gist of a news story is at its top, and a small model's attention is short too).

    Returns:
        ``[{"role": "user", "content": ...}]`` for ``tokenizer.apply_chat_template``.
    """
    instruction = HEADLINE_INSTRUCTION.format(max_words=max_words)
    body = truncate_words(" ".join(article.split()), max_article_words)
    return [{"role": "user", "content": f"{instruction}\n\nArticle: {body}"}]


def clean_headline(reply: str) -> str:
    """The headline in a chat model's reply: its first line with text after removing a label
    ("Headline:", "The article:"), quotes and markdown; a line that is only a label is skipped.
    """
    for line in reply.strip().splitlines():
        text = _LABEL.sub("", line.strip()).strip().strip("*#").strip().strip("\"'“”").strip()
        if text:
            return text
    return ""


@torch.no_grad()
def chat_generate(
    tokenizer: PreTrainedTokenizerBase,
    model: nn.Module,
    conversations: Sequence[list],
    max_new_tokens: int = 32,
    batch_size: int = 8,
) -> list[str]:
    """Greedy replies of a ``transformers`` chat model to many conversations, in batches.

    Each conversation goes through the tokenizer's chat template with the generation prompt.
    Prompts of a batch are padded on the *left*, so that every row's next token follows its own
    last prompt token; ``generate`` derives the positions from the attention mask, so a batched
    reply equals the one generated alone (up to float rounding).

    Args:
        tokenizer: the chat model's tokenizer (with a chat template and a pad token).
        model: a causal LM with ``generate`` (e.g. SmolLM2 from ``load_pretrained``).
        conversations: lists of ``{"role", "content"}`` messages, each ending with a user turn.
        max_new_tokens: the most tokens of a reply.
        batch_size: conversations per ``generate`` call.

    Returns:
        The decoded replies, special tokens removed, in the order of ``conversations``.
    """
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens}, batch_size={batch_size}: need >= 1")
    texts = [tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True)
             for c in conversations]  # fmt: skip
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths per batch
    replies: list[str] = [""] * len(texts)
    try:
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], add_special_tokens=False, padding=True,
                            return_tensors="pt").to(device)  # fmt: skip
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id
            )  # (B, T + n)
            new = out[:, enc["input_ids"].size(1) :]  # (B, n)
            for i, row in zip(idx, new, strict=True):
                replies[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = side
    return replies
