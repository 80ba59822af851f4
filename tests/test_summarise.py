"""summarise: lead baseline, sentence splitting, centroid and LexRank selection, batched chat
generation.

References: ``networkx.pagerank`` (PageRank), ``sklearn``'s cosine similarity (centroid
scores), ``sentence_transformers`` (the sentence embeddings of all-MiniLM-L6-v2), and
``transformers``' ``generate`` on one prompt at a time (batched generation with left padding).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity

from llmbook_utils.summarise import (
    centroid_scores,
    chat_generate,
    clean_headline,
    embed_texts,
    headline_messages,
    lead_summary,
    lexrank_scores,
    pagerank,
    split_sentences,
    truncate_words,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ARTICLE = (
    "Shares in the firm rose 5% on Monday. Analysts had expected a fall!\n\n"
    'Mr Smith said: "We are pleased." He added that 2005 "looks good".\n'
    "Is it over? Not yet."
)


def test_split_sentences_at_ends_and_paragraphs():
    assert split_sentences(ARTICLE) == [
        "Shares in the firm rose 5% on Monday.",
        "Analysts had expected a fall!",
        'Mr Smith said: "We are pleased."',
        'He added that 2005 "looks good".',
        "Is it over?",
        "Not yet.",
    ]
    assert split_sentences("It cost $3.5m. Then 4.2 more.") == ["It cost $3.5m.", "Then 4.2 more."]


def test_lead_summary_and_truncation():
    assert lead_summary(ARTICLE) == "Shares in the firm rose 5% on Monday."
    two = "Shares in the firm rose 5% on Monday. Analysts"
    assert lead_summary(ARTICLE, n_sentences=2, max_words=9) == two
    assert truncate_words("  a  b c ", 2) == "a b"
    with pytest.raises(ValueError, match="n_sentences=0"):
        lead_summary(ARTICLE, n_sentences=0)


def test_centroid_scores_equal_cosine_to_the_mean_unit_vector():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = cosine_similarity(x, unit.mean(axis=0, keepdims=True))[:, 0]
    np.testing.assert_allclose(centroid_scores(x), expected, atol=1e-12)
    with pytest.raises(ValueError, match="non-empty"):
        centroid_scores(np.zeros((0, 3)))


def test_pagerank_equals_networkx():
    nx = pytest.importorskip("networkx")
    rng = np.random.default_rng(1)
    weights = rng.random((6, 6)) * (rng.random((6, 6)) < 0.6)
    weights[2] = 0.0  # a dangling node
    graph = nx.from_numpy_array(weights, create_using=nx.DiGraph)
    expected = nx.pagerank(graph, alpha=0.85, tol=1e-12, weight="weight")
    ours = pagerank(weights, damping=0.85, tol=1e-12)
    np.testing.assert_allclose(ours, [expected[i] for i in range(6)], atol=1e-9)
    assert ours.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="damping=1.5"):
        pagerank(weights, damping=1.5)


def test_lexrank_is_pagerank_of_the_clipped_similarity_graph():
    nx = pytest.importorskip("networkx")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 4))
    sim = np.clip(cosine_similarity(x), 0, None)
    np.fill_diagonal(sim, 0)
    graph = nx.from_numpy_array(sim, create_using=nx.DiGraph)
    expected = nx.pagerank(graph, alpha=0.85, tol=1e-12)
    np.testing.assert_allclose(lexrank_scores(x), [expected[i] for i in range(5)], atol=1e-6)


def test_headline_prompt_and_cleaning():
    messages = headline_messages("one two three four", max_words=8, max_article_words=2)
    assert messages[0]["role"] == "user"
    assert "at most 8 words" in messages[0]["content"]
    assert messages[0]["content"].endswith("Article: one two")
    assert clean_headline('Headline: "Japan escapes recession"\n\nMore text') == (
        "Japan escapes recession"
    )
    assert clean_headline("**Title:** Oil hits record") == "Oil hits record"
    assert clean_headline("The article:\n\nGM recalls 200,000 cars") == "GM recalls 200,000 cars"
    assert clean_headline('The headline: "Oil tops $50"') == "Oil tops $50"
    assert clean_headline("Headline business is booming") == "Headline business is booming"
    assert clean_headline("") == ""


def test_embed_texts_equals_sentence_transformers(minilm_reference):
    from llmbook_utils.hf import load_pretrained

    tokenizer, encoder = load_pretrained("minilm")
    texts = ["Ad sales boost Time Warner profit", "a", "The euro hits a record against the dollar."]
    expected = minilm_reference.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(embed_texts(tokenizer, encoder, texts, batch_size=2), expected,
                               atol=1e-5)  # fmt: skip


def test_chat_generate_batched_equals_one_prompt_at_a_time():
    transformers = pytest.importorskip("transformers")
    from llmbook_utils.smollm2 import load_smollm2_tokenizer

    try:
        tokenizer = load_smollm2_tokenizer()
    except (RuntimeError, ValueError) as err:
        pytest.skip(str(err))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    conversations = [
        [{"role": "user", "content": "Hi"}],
        [{"role": "user", "content": "Write a headline for: shares rose sharply on Monday."}],
        [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
         {"role": "user", "content": "How are you today?"}],
    ]  # fmt: skip
    batched = chat_generate(tokenizer, model, conversations, max_new_tokens=6, batch_size=3)
    for conversation, reply in zip(conversations, batched, strict=True):
        text = tokenizer.apply_chat_template(conversation, tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=6, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        assert reply == tokenizer.decode(out[0, ids.size(1) :], skip_special_tokens=True).strip()
    assert tokenizer.padding_side == "right"  # restored
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        chat_generate(tokenizer, model, conversations, max_new_tokens=0)
