"""export against references: ONNX Runtime, transformers' pipeline, the char tokenizer."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_model, save_model

from llmbook_utils.bert import Bert, BertConfig
from llmbook_utils.classifier import MeanPoolingClassifier
from llmbook_utils.export import (
    OnnxClassifier,
    char_tokenizer_to_hf,
    export_classifier_onnx,
    export_gpt,
    quantize_int8,
    serialized_bytes,
)
from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.tokenizers import CharTokenizer

TEXT = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind"


def _classifier(seed: int = 0, vocab_size: int = 500, d_model: int = 32) -> MeanPoolingClassifier:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        context_length=32,
        d_model=d_model,
        n_layers=2,
        n_heads=4,
        d_ff=2 * d_model,
    )
    return MeanPoolingClassifier(Bert(config, pretraining_heads=False), num_labels=3).eval()


def _batch():
    torch.manual_seed(1)
    ids = torch.randint(1, 500, (4, 12))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[3, 3:] = 0
    return ids, mask


def test_char_tokenizer_to_hf_gives_the_same_ids():
    tok = CharTokenizer(TEXT)
    hf = char_tokenizer_to_hf(tok)
    for text in (TEXT, "be\n\nthe  question", " a"):
        assert hf(text)["input_ids"] == tok.encode(text)
        assert hf.decode(tok.encode(text)) == text


def test_exported_gpt_generates_the_same_greedy_text_through_pipeline(tmp_path):
    from transformers import pipeline

    tok = CharTokenizer(TEXT)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tok.vocab_size, context_length=64, d_model=32, n_layers=2,
                       n_heads=4)  # fmt: skip
    model = GPT(config).eval()
    prompt = "To be"
    ours = model.generate(torch.tensor([tok.encode(prompt)]), 30, temperature=0.0)
    export_gpt(model, tok, tmp_path / "gpt")
    generator = pipeline("text-generation", model=str(tmp_path / "gpt"), device="cpu")
    theirs = generator(prompt, max_new_tokens=30, do_sample=False, return_full_text=True)
    assert theirs[0]["generated_text"] == tok.decode(ours[0].tolist())
    assert all(path.stat().st_mode & 0o777 == 0o644 for path in (tmp_path / "gpt").iterdir())
    export_gpt(GPT(config), tok, tmp_path / "gpt")  # a second export replaces the first
    assert [p.name for p in tmp_path.iterdir()] == ["gpt"]


def test_safetensors_save_model_keeps_tied_weights(tmp_path):
    tok = CharTokenizer(TEXT)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=16, d_model=16, n_layers=1,
                          n_heads=2))  # fmt: skip
    save_model(model, str(tmp_path / "m.safetensors"))
    fresh = GPT(model.config)
    load_model(fresh, str(tmp_path / "m.safetensors"))
    assert fresh.lm_head.weight is fresh.tok_emb.weight
    assert torch.equal(fresh.tok_emb.weight, model.tok_emb.weight)


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_runtime_equals_torch_on_other_shapes(tmp_path, dynamo):
    model = _classifier()
    ids, mask = _batch()
    path = export_classifier_onnx(model, ids, mask, tmp_path / "clf.onnx", dynamo=dynamo)
    runtime = OnnxClassifier(path)
    torch.manual_seed(2)
    other_ids = torch.randint(1, 500, (3, 9))  # another batch size and length
    other_mask = torch.ones_like(other_ids)
    other_mask[0, 5:] = 0
    with torch.no_grad():
        expected = model(other_ids, other_mask)[0].numpy()
    assert abs(runtime(other_ids, other_mask) - expected).max() < 1e-5


def test_quantize_int8_is_close_smaller_and_leaves_the_original():
    model = _classifier(vocab_size=4000, d_model=64)  # the embeddings dominate, as in MiniLM
    ids, mask = _batch()
    quantized = quantize_int8(model)
    from torch.ao.nn.quantized import Embedding as QuantizedEmbedding
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    assert isinstance(quantized.classifier, DynamicQuantizedLinear)
    assert isinstance(quantized.encoder.word_emb, QuantizedEmbedding)
    assert isinstance(model.classifier, torch.nn.Linear)  # the original is unchanged
    with torch.no_grad():
        reference, approx = model(ids, mask)[0], quantized(ids, mask)[0]
    assert (reference - approx).abs().max() < 0.05 * reference.abs().max() + 1e-3
    assert serialized_bytes(quantized) < 0.45 * serialized_bytes(model)
    assert serialized_bytes(quantize_int8(model, embeddings=False)) > serialized_bytes(quantized)


def test_quantize_int8_keeps_the_named_modules_in_float():
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    model = _classifier()
    ids, mask = _batch()
    partly = quantize_int8(model, keep_float=["classifier"])
    assert type(partly.classifier) is torch.nn.Linear
    assert torch.equal(partly.classifier.weight, model.classifier.weight)
    quantized = [m for m in partly.encoder.modules() if isinstance(m, DynamicQuantizedLinear)]
    assert len(quantized) == sum(isinstance(m, torch.nn.Linear) for m in model.encoder.modules())
    with torch.no_grad():
        assert torch.isfinite(partly(ids, mask)[0]).all()
    with pytest.raises(ValueError, match="head"):
        quantize_int8(model, keep_float=["head"])


def test_export_bad_input(tmp_path):
    ids, _ = _batch()
    with pytest.raises(ValueError, match="must both be"):
        export_classifier_onnx(_classifier(), ids, ids[:, :3], tmp_path / "x.onnx")


def test_per_channel_scales_are_the_row_maxima():
    """Per-channel symmetric int8: scale of row i = max |W_i| / 127.5 (torch's qint8 range)."""
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(16, 8))
    layer[0].weight.data[3] *= 50  # one row with large weights
    q = quantize_int8(layer, per_channel=True)[0].weight()
    expected = layer[0].weight.abs().amax(dim=1) / 127.5
    assert torch.allclose(q.q_per_channel_scales().float(), expected, rtol=1e-5)
    per_tensor = quantize_int8(layer)[0].weight()
    assert per_tensor.q_scale() == pytest.approx(
        layer[0].weight.abs().max().item() / 127.5, rel=1e-5
    )
    error = {
        name: (w.dequantize() - layer[0].weight).abs()[0].max().item()
        for name, w in (("row", q), ("tensor", per_tensor))
    }
    assert error["row"] < error["tensor"] / 10  # small rows keep their precision
