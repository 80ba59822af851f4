"""The Llama decoder against transformers' LlamaForCausalLM (a tiny random model, and SmolLM2's
real weights), torch.nn.RMSNorm, and the published parameter counts."""

import pytest
import torch
from torch import nn

from llmbook_utils.llama import (
    Llama,
    LlamaConfig,
    RMSNorm,
    SwiGLU,
    interleave_rotary_rows,
    llama_from_hf,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_hf_llama(tie: bool = True):
    from transformers import LlamaConfig as HFLlamaConfig
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    config = HFLlamaConfig(
        vocab_size=101, hidden_size=48, intermediate_size=112, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=40,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0}, rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_rmsnorm_equals_torch():
    torch.manual_seed(0)
    ours, ref = RMSNorm(24, eps=1e-6), nn.RMSNorm(24, eps=1e-6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ref.weight.copy_(ours.weight)
    x = torch.randn(3, 5, 24) * 3
    assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_swiglu_is_silu_gate_times_up():
    torch.manual_seed(0)
    ff = SwiGLU(8, 20)
    x = torch.randn(2, 3, 8)
    gate, up = x @ ff.gate_proj.weight.T, x @ ff.up_proj.weight.T
    expected = (gate * torch.sigmoid(gate) * up) @ ff.down_proj.weight.T  # SiLU(z) = z sigma(z)
    assert torch.allclose(ff(x), expected, atol=1e-6)


@pytest.mark.parametrize("tie", [True, False])
def test_tiny_llama_equals_transformers(tie):
    hf = tiny_hf_llama(tie)
    ours = llama_from_hf(hf)
    assert ours.config.rope_base == 500.0 and ours.config.n_kv_heads == 2
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())
    idx = torch.randint(0, 101, (3, 33))
    with torch.no_grad():
        theirs = hf(idx, labels=idx)  # transformers shifts the labels inside
        logits, loss = ours(idx[:, :-1], targets=idx[:, 1:])
    assert (theirs.logits[:, :-1] - logits).abs().max() < 1e-5
    assert abs(theirs.loss.item() - loss.item()) < 1e-5


def test_rotary_rows_interleave_the_two_halves():
    w = torch.arange(2 * 4, dtype=torch.float32)[:, None]  # 2 heads of D = 4: rows 0..7
    assert interleave_rotary_rows(w, 2).flatten().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_generation_with_cache_equals_without_and_transformers_greedy():
    hf = tiny_hf_llama()
    ours = llama_from_hf(hf)
    prompt = torch.randint(0, 101, (2, 6))
    cached = ours.generate(prompt, 20, temperature=0.0)
    assert torch.equal(cached, ours.generate(prompt, 20, temperature=0.0, use_cache=False))
    theirs = hf.generate(prompt, do_sample=False, max_new_tokens=20, min_new_tokens=20,
                         pad_token_id=0)  # fmt: skip
    assert torch.equal(cached, theirs)
    # sampled, and past the context (40): the cropped text is recomputed in both paths
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = ours.generate(prompt, 50, temperature=1.0, top_k=20, generator=g1)
    b = ours.generate(prompt, 50, temperature=1.0, top_k=20, use_cache=False, generator=g2)
    assert a.shape == (2, 56) and torch.equal(a, b)


def test_kv_cache_holds_only_the_key_value_heads():
    from llmbook_utils.attention import KVCache

    torch.manual_seed(0)
    model = Llama(LlamaConfig.from_name("tiny")).eval()
    caches = [KVCache(16) for _ in model.blocks]
    with torch.no_grad():
        model._hidden(torch.randint(0, 256, (1, 5)), caches)
    assert caches[0].keys.shape == (1, 2, 16, 16)  # (B, G, max_len, D): G = 2, not H = 4


def test_published_parameter_counts():
    with torch.device("meta"):  # no memory: only shapes
        smollm2 = Llama(LlamaConfig.from_name("smollm2-135m"))
        llama2 = Llama(LlamaConfig.from_name("llama2-7b"))
    assert smollm2.num_parameters() == 134_515_008  # SmolLM2-135M, embeddings tied
    assert llama2.num_parameters() == 6_738_415_616  # Llama 2 7B


def test_bad_configs_and_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="n_kv_heads=4"):
        LlamaConfig.from_name("tiny", n_kv_heads=4, n_heads=6, d_model=48)
    with pytest.raises(ValueError, match="d_model=60"):
        LlamaConfig.from_name("tiny", d_model=60, n_heads=8)
    with pytest.raises(ValueError, match="unknown Llama preset"):
        LlamaConfig.from_name("llama-9000")
    model = Llama(LlamaConfig.from_name("tiny"))
    with pytest.raises(ValueError, match="context_length=128"):
        model(torch.zeros(1, 129, dtype=torch.long))


SHAKESPEARE = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them."
)


@pytest.mark.slow
def test_smollm2_equals_transformers_on_real_text():
    from llmbook_utils.smollm2 import load_smollm2_hf

    tokenizer, hf = load_smollm2_hf()
    ours = llama_from_hf(hf)
    assert ours.config == LlamaConfig.from_name("smollm2-135m", norm_eps=hf.config.rms_norm_eps)
    idx = tokenizer(SHAKESPEARE, return_tensors="pt").input_ids
    with torch.no_grad():
        theirs = hf(idx).logits
        logits, _ = ours(idx)
    assert (theirs - logits).abs().max() < 1e-4
    prompt = idx[:, :12]
    greedy = ours.generate(prompt, 16, temperature=0.0)
    reference = hf.generate(prompt, do_sample=False, max_new_tokens=16, min_new_tokens=16)
    assert torch.equal(greedy, reference)


@pytest.mark.slow
def test_load_pretrained_smollm2_works_offline_and_converts():
    from transformers import LlamaForCausalLM

    from llmbook_utils.hf import llama_from_hf as reexported
    from llmbook_utils.hf import load_pretrained

    tokenizer, model = load_pretrained("smollm2")  # as for "minilm": the transformers model
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert reexported is llama_from_hf and len(tokenizer) == 49_152
    assert reexported(model).num_parameters() == 134_515_008
