"""scaling: parameter counts, model-state bytes, activations and compute against published
figures (transformers' models, the ZeRO paper, GPT-3, Llama 2) and Korthikanti et al.'s formula."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from llmbook_utils.gpt import GPTConfig
from llmbook_utils.llama import LlamaConfig as BookLlamaConfig
from llmbook_utils.scaling import (
    activation_bytes,
    gpt_parameter_count,
    llama_parameter_count,
    mfu,
    model_state_bytes,
    training_flops,
    training_seconds,
)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights once


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium"])
def test_gpt_count_equals_transformers(name):
    ours = GPTConfig.from_name(name)
    hf = GPT2Config(n_embd=ours.d_model, n_layer=ours.n_layers, n_head=ours.n_heads)
    with torch.device("meta"):
        reference = _count(GPT2LMHeadModel(hf))
    assert gpt_parameter_count(ours) == reference
    if name == "gpt2":
        assert reference == 124_439_808  # the published GPT-2 small


def test_gpt_count_without_bias_and_untied():
    from llmbook_utils.gpt import GPT

    config = GPTConfig(vocab_size=50, context_length=16, d_model=32, n_layers=3, n_heads=4,
                       bias=False, tie_weights=False, d_ff=48)  # fmt: skip
    assert gpt_parameter_count(config) == _count(GPT(config))


def test_llama_counts_equal_transformers():
    llama2 = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                         tie_word_embeddings=False)  # fmt: skip
    smol = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                       tie_word_embeddings=True)  # fmt: skip
    with torch.device("meta"):
        ref_llama2 = _count(LlamaForCausalLM(llama2))
        ref_smol = _count(LlamaForCausalLM(smol))
    assert ref_llama2 == 6_738_415_616  # Llama 2 7B, as published
    assert llama_parameter_count(BookLlamaConfig.from_name("llama2-7b")) == ref_llama2
    assert llama_parameter_count(BookLlamaConfig.from_name("smollm2-135m")) == ref_smol


def test_zero_paper_figure_1():
    # Rajbhandari et al. 2020, figure 1: 7.5B parameters, N_d = 64, K = 12.
    psi, gb = 7.5e9, 1e9
    mixed = model_state_bytes("mixed")
    assert (mixed.weights, mixed.gradients, mixed.optimizer) == (2, 2, 12)
    assert mixed.total == 16
    expected = {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}
    for stage, published in expected.items():
        per_device = model_state_bytes("mixed", zero_stage=stage, n_devices=64).total * psi / gb
        assert round(per_device, 1) == published, (stage, per_device)
    assert model_state_bytes("fp32").total == 16  # 4 + 4 + 8: the same total, no master copy
    assert model_state_bytes("fp32", optimizer="sgd").total == 8


def test_state_bytes_validation():
    with pytest.raises(ValueError, match="zero_stage=4"):
        model_state_bytes(zero_stage=4)
    with pytest.raises(ValueError, match="precision='fp8'"):
        model_state_bytes("fp8")


def test_activation_formula_of_korthikanti():
    s, b, h, a, L = 2048, 1, 12288, 96, 96  # GPT-3 175B's shape
    full = activation_bytes(s, b, h, a, L)
    assert full == L * s * b * h * (34 + 5 * a * s / h)
    assert activation_bytes(s, b, h, a, L, checkpointing=True) == L * 2 * s * b * h
    no_dropout = activation_bytes(s, b, h, a, L, dropout=False, flash_attention=True)
    assert no_dropout == L * 32 * s * b * h
    with pytest.raises(ValueError, match="n_heads=0"):
        activation_bytes(s, b, h, 0, L)


def test_gpt3_training_compute():
    # Brown et al. 2020, table D.1: GPT-3 175B (174.6B parameters), 300B tokens, 3.14e23 FLOPs.
    assert training_flops(174.6e9, 300e9) == pytest.approx(3.14e23, rel=0.01)
    assert training_flops(175e9, 300e9) == pytest.approx(3.14e23, rel=0.01)


def test_llama2_gpu_hours_imply_a_plausible_mfu():
    # Touvron et al. 2023: Llama 2 7B, 2T tokens, 184,320 A100-80GB GPU-hours (312 TFLOP/s bf16).
    flops = training_flops(6.738e9, 2e12)
    seconds = 184_320 * 3600
    implied = flops / (seconds * 312e12)
    assert 0.3 < implied < 0.5
    assert training_seconds(flops, 1, 312e12, implied) == pytest.approx(seconds)
    tokens_per_s = 2e12 / seconds
    assert mfu(6.738e9, tokens_per_s, 312e12) == pytest.approx(implied)
    with pytest.raises(ValueError, match="mfu=1.5"):
        training_seconds(flops, 8, 312e12, 1.5)
