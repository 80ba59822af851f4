"""Bert checked against transformers' BertModel on the pretrained MiniLM, and BERT-base's size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmbook_utils.bert import Bert, BertConfig, BertForSequenceClassification
from llmbook_utils.hf import bert_from_hf, load_pretrained, local_model_dir

transformers = pytest.importorskip("transformers")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Attention is all you need.",
    "BERT reads a sentence in both directions at once, unlike a left-to-right language model.",
    "Short one.",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def minilm():
    tokenizer, hf_model = load_pretrained("minilm")
    return tokenizer, hf_model, bert_from_hf(hf_model)


def test_minilm_matches_transformers(minilm) -> None:
    tokenizer, hf_model, ours = minilm
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any()  # the batch really has padding
    with torch.no_grad():
        ref = hf_model(**enc)
        out = ours(**enc)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.pooled_output, ref.pooler_output, atol=1e-5, rtol=0)


def test_minilm_sentence_pairs_and_attention_maps(minilm) -> None:
    tokenizer, hf_model, ours = minilm
    enc = tokenizer(SENTENCES[:2], SENTENCES[2:], padding=True, return_tensors="pt")
    assert enc["token_type_ids"].any()  # second segments have type 1
    # transformers returns attention weights only from its "eager" (explicit) implementation.
    hf_eager = transformers.BertModel.from_pretrained(
        str(local_model_dir("minilm")), attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        ref = hf_model(**enc)
        ref_eager = hf_eager(**enc, output_attentions=True)
        out = ours(**enc)
        maps = ours.attention_maps(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.pooled_output, ref.pooler_output, atol=1e-5, rtol=0)
    B, T = enc["input_ids"].shape
    assert maps.shape == (B, 6, 12, T, T)  # (B, L, H, T, T)
    torch.testing.assert_close(maps, torch.stack(ref_eager.attentions, 1), atol=1e-5, rtol=0)


def test_bert_base_parameter_count() -> None:
    config = BertConfig.from_name("bert-base")
    with torch.device("meta"):
        model = Bert(config)
        hf_pretraining = transformers.BertForPreTraining(transformers.BertConfig())
    assert model.num_parameters(exclude_heads=True) == 109_482_240
    # With the MLM and NSP heads: the same total as transformers' BertForPreTraining.
    assert model.num_parameters() == sum(p.numel() for p in hf_pretraining.parameters())


def test_pretraining_heads_match_transformers() -> None:
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
    )
    hf_model = transformers.BertForPreTraining(hf_config).eval()
    ours = bert_from_hf(hf_model)
    assert ours.mlm_decoder.weight is ours.word_emb.weight  # MLM decoder tied to embeddings
    ids = torch.randint(1, 99, (3, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    with torch.no_grad():
        ref = hf_model(input_ids=ids, attention_mask=mask, token_type_ids=types)
        out = ours(ids, types, mask)
    torch.testing.assert_close(out.mlm_logits, ref.prediction_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.nsp_logits, ref.seq_relationship_logits, atol=1e-5, rtol=1e-5)


def test_sequence_classification_matches_transformers(minilm) -> None:
    tokenizer, hf_model, ours = minilm
    folder = str(local_model_dir("minilm"))
    torch.manual_seed(0)
    hf_clf = transformers.BertForSequenceClassification.from_pretrained(folder, num_labels=3)
    hf_clf.eval()
    clf = BertForSequenceClassification.from_bert(ours, num_labels=3).eval()
    clf.classifier.load_state_dict(hf_clf.classifier.state_dict())
    assert not any(
        name.startswith(("bert.mlm_", "bert.nsp_")) for name, _ in clf.named_parameters()
    )
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    labels = torch.tensor([0, 2, 1, 0])
    with torch.no_grad():
        ref = hf_clf(**enc, labels=labels)
        logits, loss = clf(**enc, labels=labels)
    torch.testing.assert_close(logits, ref.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, ref.loss, atol=1e-5, rtol=1e-5)

    weights = torch.tensor([1.0, 2.0, 0.5])
    weighted = BertForSequenceClassification.from_bert(ours, 3, class_weights=weights).eval()
    weighted.classifier.load_state_dict(clf.classifier.state_dict())
    with torch.no_grad():
        _, wloss = weighted(**enc, labels=labels)
    torch.testing.assert_close(wloss, F.cross_entropy(logits, labels, weight=weights))


def test_padding_does_not_change_real_tokens() -> None:
    torch.manual_seed(0)
    model = Bert(BertConfig.from_name("tiny", vocab_size=50, context_length=16)).eval()
    ids = torch.randint(1, 50, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 6), torch.zeros(1, 4)], dim=1).long()
    with torch.no_grad():
        a = model(ids)
        b = model(padded, attention_mask=mask)
    torch.testing.assert_close(b.last_hidden_state[:, :6], a.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(b.pooled_output, a.pooled_output, atol=1e-5, rtol=0)
    assert a.mlm_logits.shape == (1, 6, 50) and a.nsp_logits.shape == (1, 2)


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="d_model=100 is not divisible by n_heads=12"):
        BertConfig(100, 16, d_model=100, n_layers=1, n_heads=12, d_ff=10)
    with pytest.raises(ValueError, match="unknown BERT preset 'bert-huge'"):
        BertConfig.from_name("bert-huge")
    model = Bert(BertConfig.from_name("tiny", vocab_size=50, context_length=8))
    with pytest.raises(ValueError, match="sequence length 9 > context_length=8"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token_type_ids shape \(1, 3\) != input_ids shape"):
        model(torch.ones(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask shape \(2, 4\)"):
        model(torch.ones(1, 4, dtype=torch.long), attention_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="num_labels=1"):
        BertForSequenceClassification(model.config, 1)
