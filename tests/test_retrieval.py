"""llmbook_utils.retrieval against rank_bm25, scikit-learn and hand-computed rankings."""

from __future__ import annotations

import numpy as np
import pytest
from rank_bm25 import BM25Okapi
from sklearn.metrics import label_ranking_average_precision_score, top_k_accuracy_score
from sklearn.metrics.pairwise import cosine_similarity

from llmbook_utils.retrieval import (
    BM25,
    BM25Config,
    char_ngrams,
    cosine_scores,
    mrr_at_k,
    recall_at_k,
    rerank,
    top_k,
    word_tokens,
)

DOCS = [
    "The cat sat on the mat.",
    "A dog chased the cat around the garden, and the cat ran up a tree.",
    "What is the capital of France? Paris is the capital.",
    "I reset my password but the login page still says the password is wrong.",
    "The the the",
    "Machine learning is a field of artificial intelligence.",
    "Deep learning uses neural networks with many layers.",
]
QUERIES = [
    "cat on a mat",
    "the cat the cat",  # repeated terms count twice, as in rank_bm25
    "password reset",
    "capital of France",
    "quantum chromodynamics",  # no known term
    "learning learning neural",
    "the",  # in more than half the documents: negative idf, floored
]


@pytest.mark.parametrize(
    "config", [BM25Config(), BM25Config(k1=0.9, b=0.4, epsilon=0.5), BM25Config(k1=2.0, b=1.0)]
)
def test_bm25_scores_equal_rank_bm25(config):
    corpus = [word_tokens(d) for d in DOCS]
    ours = BM25(corpus, config)
    reference = BM25Okapi(corpus, k1=config.k1, b=config.b, epsilon=config.epsilon)
    batch = ours.get_batch_scores([word_tokens(q) for q in QUERIES])
    for i, query in enumerate(QUERIES):
        expected = reference.get_scores(word_tokens(query))
        np.testing.assert_allclose(ours.get_scores(word_tokens(query)), expected, atol=1e-12)
        np.testing.assert_allclose(batch[i], expected, atol=1e-12)
    assert ours.idf[ours.vocabulary["the"]] == pytest.approx(reference.idf["the"])


def test_bm25_on_chinese_character_bigrams_equals_rank_bm25():
    docs = ["我的密码忘记了怎么办", "今天天气很好", "怎么修改密码", "你叫什么名字"]
    corpus = [char_ngrams(d) for d in docs]
    query = char_ngrams("忘记密码")
    np.testing.assert_allclose(
        BM25(corpus).get_scores(query), BM25Okapi(corpus).get_scores(query), atol=1e-12
    )


def test_bad_input_names_the_values():
    with pytest.raises(ValueError, match="b=1.5"):
        BM25Config(b=1.5)
    with pytest.raises(ValueError, match="k1=-1"):
        BM25Config(k1=-1)
    with pytest.raises(ValueError, match="tokenise"):
        BM25(["a plain string"])
    with pytest.raises(ValueError, match="empty"):
        BM25([])
    with pytest.raises(ValueError, match="k=0"):
        recall_at_k([[0, 1]], [{0}], k=0)
    with pytest.raises(ValueError, match="relevant"):
        mrr_at_k([[0, 1]], [set()], k=2)
    with pytest.raises(ValueError, match="k=5"):
        top_k(np.zeros((2, 3)), 5)


def test_tokenisers():
    assert word_tokens("What's AI? It's 2024!") == ["what", "s", "ai", "it", "s", "2024"]
    assert char_ngrams("你 好吗") == ["你好", "好吗"]
    assert char_ngrams("好") == ["好"] and char_ngrams(" ") == []


def test_single_relevant_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    n_queries, n_docs = 40, 12
    scores = rng.normal(size=(n_queries, n_docs))  # continuous: no ties
    gold = rng.integers(0, n_docs, size=n_queries)
    ranked = top_k(scores, n_docs)
    relevant = [{int(g)} for g in gold]
    for k in (1, 3, 5):
        expected = top_k_accuracy_score(gold, scores, k=k, labels=np.arange(n_docs))
        assert recall_at_k(ranked, relevant, k) == pytest.approx(expected)
    # with one relevant document and no cut-off, average precision is the reciprocal rank
    indicator = np.zeros_like(scores, dtype=int)
    indicator[np.arange(n_queries), gold] = 1
    expected_mrr = label_ranking_average_precision_score(indicator, scores)
    assert mrr_at_k(ranked, relevant, k=n_docs) == pytest.approx(expected_mrr)


def test_multi_relevant_metrics_by_hand():
    ranked = [[3, 1, 4, 0, 2], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]
    relevant = [{1, 2}, {0}, {0, 1}]
    # top 2: {3,1} has 1 of 2; {0,1} has 1 of 1; {4,3} has 0 of 2
    assert recall_at_k(ranked, relevant, 2) == pytest.approx((0.5 + 1 + 0) / 3)
    # first relevant at ranks 2, 1, 4; MRR@3 drops the third
    assert mrr_at_k(ranked, relevant, 3) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert mrr_at_k(ranked, relevant, 5) == pytest.approx((1 / 2 + 1 + 1 / 4) / 3)


def test_top_k_breaks_ties_by_index_and_rerank_reorders_candidates():
    scores = np.array([[0.5, 0.9, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(top_k(scores, 3), [[1, 0, 2], [0, 1, 2]])
    candidates = np.array([[2, 0, 3], [3, 1, 0]])
    second = np.array([[0.0, 0.0, 0.3, 0.7], [0.2, 0.2, 0.0, 0.1]])
    # row 0: 3 (0.7) > 2 (0.3) > 0 (0.0); row 1: 1 and 0 tie at 0.2, first-stage order kept
    np.testing.assert_array_equal(rerank(candidates, second), [[3, 2, 0], [1, 0, 3]])


def test_cosine_scores_equal_sklearn():
    rng = np.random.default_rng(1)
    q, d = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    np.testing.assert_allclose(cosine_scores(q, d), cosine_similarity(q, d), atol=1e-12)
    with pytest.raises(ValueError, match=r"\(5, 8\)"):
        cosine_scores(q, d[:, :4])
