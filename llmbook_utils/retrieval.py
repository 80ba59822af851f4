"""Retrieval for question answering over a FAQ: BM25, dense scores, re-ranking and metrics.

- ``BM25``: Okapi BM25 (Robertson and Zaragoza, 2009, "The Probabilistic Relevance Framework:
  BM25 and Beyond", https://doi.org/10.1561/1500000019) with the variant of ``rank_bm25``'s
  ``BM25Okapi``: ``idf(t) = ln((N - n_t + 0.5) / (n_t + 0.5))``, negative values replaced by
  ``epsilon`` times the mean idf, and a query term counted once per occurrence in the query.
  The per-document term weights are precomputed in a sparse matrix, so scoring a batch of
  queries is one sparse matrix product.
- ``word_tokens`` and ``char_ngrams``: the tokenisers BM25 needs for English and Chinese text.
- ``cosine_scores``: dense retrieval scores of embedded queries against embedded documents.
- ``top_k`` and ``rerank``: rankings from scores, and a first-stage candidate list reordered by
  a second scorer (retrieve-then-rerank).
- ``recall_at_k`` and ``mrr_at_k``: the share of relevant documents in the top k, and the mean
  reciprocal rank of the first relevant document within the top k.

Shape legend: Q queries, N documents, V vocabulary (distinct terms), C embedding width, k the
length of a ranking.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

_WORD = re.compile(r"\w+")


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters, digits and underscores: ``"What's AI?"`` -> what, s, ai."""
    return _WORD.findall(text.lower())


def char_ngrams(text: str, n: int = 2) -> list[str]:
    """The overlapping character n-grams of a text without whitespace (for Chinese).

    A text shorter than ``n`` characters gives itself as its only token (none if empty).
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    chars = "".join(text.split())
    if len(chars) < n:
        return [chars] if chars else []
    return [chars[i : i + n] for i in range(len(chars) - n + 1)]


@dataclass(frozen=True)
class BM25Config:
    """The free parameters of Okapi BM25 (defaults of ``rank_bm25.BM25Okapi``)."""

    k1: float = 1.5  # term-frequency saturation: 0 ignores the count, large is near linear
    b: float = 0.75  # length normalisation: 0 none, 1 full (tf divided by length / mean length)
    epsilon: float = 0.25  # idf floor for terms in over half the documents, times the mean idf

    def __post_init__(self) -> None:
        if self.k1 < 0:
            raise ValueError(f"k1={self.k1} must be >= 0")
        if not 0 <= self.b <= 1:
            raise ValueError(f"b={self.b} must be in [0, 1]")
        if self.epsilon < 0:
            raise ValueError(f"epsilon={self.epsilon} must be >= 0")


@dataclass
class BM25:
    """An Okapi BM25 index over tokenised documents.

    The score of document d for query q is

        sum over query tokens t of  idf(t) f(t, d) (k1 + 1) / (f(t, d) + k1 (1 - b + b |d| / L))

    with f(t, d) the count of t in d, |d| the length of d in tokens and L the mean length.

    Args:
        corpus: N documents, each a list of tokens (e.g. ``word_tokens(text)``).
        config: k1, b and epsilon.

    Attributes:
        vocabulary: term -> column index, V terms.
        idf: (V,) inverse document frequencies after the epsilon floor.
        doc_len: (N,) document lengths in tokens.
        weights: (N, V) sparse matrix of the per-document term weights (the summand above).
    """

    corpus: Sequence[Sequence[str]]
    config: BM25Config = field(default_factory=BM25Config)

    def __post_init__(self) -> None:
        if len(self.corpus) == 0:
            raise ValueError("corpus is empty: BM25 needs at least one document")
        if isinstance(self.corpus[0], str):
            raise ValueError("corpus must hold token lists, not strings; tokenise it first")
        self.vocabulary: dict[str, int] = {}
        rows, cols, counts = [], [], []
        for d, doc in enumerate(self.corpus):
            for term, count in Counter(doc).items():
                rows.append(d)
                cols.append(self.vocabulary.setdefault(term, len(self.vocabulary)))
                counts.append(count)
        n_docs, n_terms = len(self.corpus), len(self.vocabulary)
        tf = sparse.csr_matrix(
            (np.array(counts, dtype=np.float64), (rows, cols)), shape=(n_docs, n_terms)
        )  # (N, V) term counts
        self.doc_len = np.array([len(doc) for doc in self.corpus], dtype=np.float64)  # (N,)
        avgdl = self.doc_len.mean()
        if avgdl == 0:
            raise ValueError("every document is empty: nothing to index")
        df = np.bincount(cols, minlength=n_terms).astype(np.float64)  # (V,) documents per term
        idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
        idf[idf < 0] = self.config.epsilon * idf.mean()  # the floor uses the mean before it
        self.idf = idf
        k1, b = self.config.k1, self.config.b
        norm = k1 * (1 - b + b * self.doc_len / avgdl)  # (N,)
        f = tf.data
        doc_of_entry = np.repeat(np.arange(n_docs), np.diff(tf.indptr))  # row of every entry
        data = idf[tf.indices] * f * (k1 + 1) / (f + norm[doc_of_entry])
        self.weights = sparse.csr_matrix((data, tf.indices, tf.indptr), shape=tf.shape)

    def query_counts(self, queries: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        """(Q, V) counts of each query's known terms (unknown terms score 0, so drop out)."""
        rows, cols, counts = [], [], []
        for q, query in enumerate(queries):
            for term, count in Counter(query).items():
                if term in self.vocabulary:
                    rows.append(q)
                    cols.append(self.vocabulary[term])
                    counts.append(count)
        return sparse.csr_matrix(
            (np.array(counts, dtype=np.float64), (rows, cols)),
            shape=(len(queries), len(self.vocabulary)),
        )

    def get_scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 scores (N,) of every document for one tokenised query."""
        if isinstance(query, str):
            raise ValueError("query must be a token list, not a string; tokenise it first")
        return self.get_batch_scores([query])[0]

    def get_batch_scores(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        """BM25 scores (Q, N) of every document for Q tokenised queries."""
        return np.asarray((self.query_counts(queries) @ self.weights.T).todense())  # (Q, N)


def cosine_scores(queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Cosine similarities (Q, N) of query embeddings (Q, C) and document embeddings (N, C)."""
    queries, documents = np.asarray(queries, dtype=np.float64), np.asarray(documents, np.float64)
    if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
        raise ValueError(
            f"need (Q, C) and (N, C) embeddings, got {queries.shape} and {documents.shape}"
        )
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(min=1e-12)
    d = documents / np.linalg.norm(documents, axis=1, keepdims=True).clip(min=1e-12)
    return q @ d.T  # (Q, C) @ (C, N) -> (Q, N)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices (Q, k) of the k highest scores of every row, best first; ties: lower index first."""
    scores = np.atleast_2d(np.asarray(scores))
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k={k} must be in [1, N={scores.shape[1]}]")
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def rerank(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Reorder each query's candidates (Q, k) by a second scorer's scores (Q, N), best first.

    Ties keep the first-stage order. Documents outside the candidates are never promoted, so
    recall at k cannot change, only the order inside the top k.
    """
    candidates, scores = np.asarray(candidates), np.asarray(scores)
    if candidates.ndim != 2 or scores.ndim != 2 or len(candidates) != len(scores):
        raise ValueError(
            f"need candidates (Q, k) and scores (Q, N), got {candidates.shape}, {scores.shape}"
        )
    second = np.take_along_axis(scores, candidates, axis=1)  # (Q, k)
    order = np.argsort(-second, axis=1, kind="stable")  # (Q, k)
    return np.take_along_axis(candidates, order, axis=1)


def _check_rankings(ranked, relevant: Sequence[set], k: int) -> None:
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    if len(ranked) != len(relevant) or len(ranked) == 0:
        raise ValueError(f"{len(ranked)} rankings for {len(relevant)} relevance sets")
    if any(len(rel) == 0 for rel in relevant):
        raise ValueError("every query needs at least one relevant document")


def recall_at_k(ranked, relevant: Sequence[set], k: int) -> float:
    """Mean over queries of |top k ∩ relevant| / |relevant|.

    With one relevant document per query this is the share of queries whose document is in
    the top k (the "hit rate" or top-k accuracy).

    Args:
        ranked: Q rankings of document ids, best first (a (Q, >= k) array or lists).
        relevant: Q non-empty sets of relevant document ids.
        k: the cut-off.
    """
    _check_rankings(ranked, relevant, k)
    hits = [len(set(np.asarray(r)[:k].tolist()) & rel) / len(rel)
            for r, rel in zip(ranked, relevant, strict=True)]  # fmt: skip
    return float(np.mean(hits))


def mrr_at_k(ranked, relevant: Sequence[set], k: int = 10) -> float:
    """Mean reciprocal rank: the mean of 1 / (rank of the first relevant document), 0 if it is
    not in the top k.

    Args:
        ranked: Q rankings of document ids, best first.
        relevant: Q non-empty sets of relevant document ids.
        k: the cut-off (MRR@10 by default).
    """
    _check_rankings(ranked, relevant, k)
    reciprocal = []
    for r, rel in zip(ranked, relevant, strict=True):
        ranks = [i for i, doc in enumerate(np.asarray(r)[:k].tolist(), 1) if doc in rel]
        reciprocal.append(1.0 / ranks[0] if ranks else 0.0)
    return float(np.mean(reciprocal))
