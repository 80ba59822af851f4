"""MeanPoolingClassifier: its pooled vector is sentence-transformers' mean pooling on MiniLM.

References: ``sentence_transformers`` (Transformer + mean Pooling, the way all-MiniLM-L6-v2
embeds a sentence), the same text without padding, and ``F.cross_entropy``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmbook_utils.bert import Bert, BertConfig
from llmbook_utils.classifier import MeanPoolingClassifier, mean_pool
from llmbook_utils.data import PaddingCollator
from llmbook_utils.train import TrainConfig, train

TEXTS = [
    "I love this phone, the battery lasts for days!",
    "worst flight ever",
    "The meeting was moved to Thursday afternoon, see you there.",
]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def minilm(minilm_reference):
    """Our Bert with MiniLM's weights, and sentence-transformers' model of the same folder."""
    from llmbook_utils.hf import bert_from_hf, load_pretrained

    _, hf_model = load_pretrained("minilm")
    return bert_from_hf(hf_model), minilm_reference


def tiny_bert(seed: int = 0) -> Bert:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=50, context_length=16, d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.1
    )
    return Bert(config, pretraining_heads=False)


def tokenize(reference, texts: list[str]) -> dict:
    """sentence-transformers' own tokenization: padded to the longest text, with a mask."""
    return dict(getattr(reference, "preprocess", reference.tokenize)(texts))


def test_pooled_vector_equals_sentence_transformers_mean_pooling(minilm):
    encoder, reference = minilm
    transformer, pooling = reference[0], reference[1]  # then Normalize: unit length
    assert pooling.get_config_dict()["pooling_mode"] == "mean"
    features = tokenize(reference, TEXTS)
    assert (features["attention_mask"] == 0).any()  # the batch really contains padding
    with torch.no_grad():
        expected = pooling(transformer(dict(features)))["sentence_embedding"]  # (B, 384)
        embedding = reference(dict(features))["sentence_embedding"]  # what encode() returns
        model = MeanPoolingClassifier(encoder, num_labels=3).eval()
        pooled = model.pool(
            features["input_ids"], features["attention_mask"], features.get("token_type_ids")
        )
    assert pooled.shape == (3, 384)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(F.normalize(pooled, dim=-1), embedding, atol=1e-5, rtol=0)


def test_padding_does_not_change_a_rows_pooled_vector(minilm):
    encoder, reference = minilm
    model = MeanPoolingClassifier(encoder, num_labels=3).eval()
    batch = tokenize(reference, TEXTS)
    with torch.no_grad():
        padded = model.pool(batch["input_ids"], batch["attention_mask"])
        for row, text in enumerate(TEXTS):
            alone = tokenize(reference, [text])  # no padding at all
            assert alone["attention_mask"].all()
            single = model.pool(alone["input_ids"], alone["attention_mask"])
            torch.testing.assert_close(padded[row], single[0], atol=1e-5, rtol=0)
            # extra padding tokens with arbitrary ids are ignored too
            ids = torch.cat([alone["input_ids"], torch.full((1, 5), 999)], dim=1)
            mask = torch.cat([alone["attention_mask"], torch.zeros(1, 5, dtype=torch.long)], 1)
            torch.testing.assert_close(model.pool(ids, mask)[0], single[0], atol=1e-5, rtol=0)


def test_mean_pool_formula():
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)  # (B, T, C)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    pooled = mean_pool(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0, :2].mean(0))
    assert torch.equal(pooled[1], torch.zeros(4))  # no real token: zeros, not NaN


def test_forward_returns_logits_and_the_cross_entropy():
    model = MeanPoolingClassifier(tiny_bert(), num_labels=3).eval()
    ids = torch.randint(1, 50, (4, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    labels = torch.tensor([0, 2, 1, 2])
    logits, loss = model(ids, mask, labels)
    assert logits.shape == (4, 3)
    expected = model.classifier(model.pool(ids, mask))  # eval mode: dropout is the identity
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))
    assert model(ids)[1] is None  # no labels, no loss; no mask: every token is real

    weights = torch.tensor([1.0, 2.0, 0.5])
    weighted = MeanPoolingClassifier(tiny_bert(), 3, class_weights=weights).eval()
    logits, loss = weighted(ids, mask, labels)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, weight=weights))


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="num_labels=1"):
        MeanPoolingClassifier(tiny_bert(), num_labels=1)
    with pytest.raises(ValueError, match="dropout=1.5"):
        MeanPoolingClassifier(tiny_bert(), num_labels=2, dropout=1.5)
    with pytest.raises(ValueError, match=r"class_weights shape \(2,\)"):
        MeanPoolingClassifier(tiny_bert(), num_labels=3, class_weights=torch.ones(2))
    model = MeanPoolingClassifier(tiny_bert(), num_labels=2)
    with pytest.raises(ValueError, match=r"labels shape \(3,\) != \(B=2,\)"):
        model(torch.ones(2, 4, dtype=torch.long), labels=torch.zeros(3, dtype=torch.long))


def test_trains_on_padded_dict_batches():
    gen = torch.Generator().manual_seed(0)
    examples = []
    for i in range(64):  # class 1 texts contain token 7, class 0 texts do not
        ids = torch.randint(
            10, 50, (int(torch.randint(2, 12, (1,), generator=gen)),), generator=gen
        )
        if i % 2:
            ids[0] = 7
        examples.append({"input_ids": ids.tolist(), "label": i % 2})
    cfg = TrainConfig(max_steps=60, batch_size=16, lr=3e-3, log_every=20, device="cpu",
                      progress=False, eval_batches=None)  # fmt: skip
    model = MeanPoolingClassifier(tiny_bert(), num_labels=2)
    history = train(model, examples, cfg, eval_data=examples, collate_fn=PaddingCollator())
    assert history.val_loss[-1] < 0.5 * history.train_loss[0]
