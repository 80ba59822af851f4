"""GPT checked against transformers' GPT2LMHeadModel, GPT-2's parameter count and LM properties."""

from __future__ import annotations

import math

import pytest
import torch

from llmbook_utils.attention import KVCache, causal_mask
from llmbook_utils.gpt import GPT, CausalSelfAttention, GPTConfig
from llmbook_utils.hf import gpt_from_hf, gpt_to_hf

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hf_tiny():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=32,
        vocab_size=100,
        bos_token_id=None,
        eos_token_id=None,
    )
    return transformers.GPT2LMHeadModel(config).eval()


def _tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=50, context_length=16, d_model=32, n_layers=2, n_heads=4, **overrides)
    ).eval()


def test_gpt_from_hf_gives_the_same_logits_and_loss(hf_tiny) -> None:
    ours = gpt_from_hf(hf_tiny)
    idx = torch.randint(0, 100, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf_tiny(input_ids=idx, labels=idx)  # transformers shifts the labels itself
        logits, loss = ours(idx[:, :-1], targets=idx[:, 1:])
        full_logits, _ = ours(idx)
    torch.testing.assert_close(full_logits, ref.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, ref.logits[:, :-1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, ref.loss, atol=1e-5, rtol=1e-5)
    assert ours.lm_head.weight is ours.tok_emb.weight
    assert ours.config.activation == "gelu_tanh"  # GPT-2's gelu_new


def test_training_gradients_match_transformers(hf_tiny) -> None:
    """The backward pass too: the gradient of GPT-2's c_attn equals that of our fused qkv."""
    ours = gpt_from_hf(hf_tiny)  # evaluation mode only switches dropout (p=0.1 here) off
    hf = gpt_to_hf(ours)
    idx = torch.randint(0, 100, (2, 32), generator=torch.Generator().manual_seed(8))
    ours(idx[:, :-1], targets=idx[:, 1:])[1].backward()
    hf(input_ids=idx, labels=idx).loss.backward()  # transformers shifts the labels itself
    for i in range(2):
        grad = hf.transformer.h[i].attn.c_attn.weight.grad  # Conv1D: (C, 3C)
        torch.testing.assert_close(ours.blocks[i].attn.qkv.weight.grad, grad.t())
    torch.testing.assert_close(ours.tok_emb.weight.grad, hf.transformer.wte.weight.grad)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
def test_activation_maps_to_transformers(activation: str) -> None:
    """Exact GELU <-> HF "gelu", the tanh form <-> GPT-2's "gelu_new"; logits equal either way."""
    model = _tiny(activation=activation)
    hf = gpt_to_hf(model)
    assert hf.config.activation_function == {"gelu": "gelu", "gelu_tanh": "gelu_new"}[activation]
    idx = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf(idx).logits, atol=1e-5, rtol=1e-5)
    assert gpt_from_hf(hf).config.activation == activation
    other = _tiny(activation="gelu" if activation == "gelu_tanh" else "gelu_tanh")
    with torch.no_grad():  # and the two really differ
        assert not torch.allclose(other(idx)[0], model(idx)[0], atol=1e-6)


def test_causal_self_attention_matches_torch_multihead_attention() -> None:
    """qkv's (3C, C) weight is exactly torch's in_proj_weight: [W_Q; W_K; W_V]."""
    torch.manual_seed(0)
    C, H, B, T = 16, 4, 2, 6
    ours = CausalSelfAttention(C, H).eval()
    ref = torch.nn.MultiheadAttention(C, H, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.load_state_dict(ours.out_proj.state_dict())
    x = torch.randn(B, T, C)
    ref_out, ref_w = ref(x, x, x, attn_mask=~causal_mask(T), average_attn_weights=False)
    out, none = ours(x)
    explicit, weights = ours(x, return_weights=True)
    assert none is None
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(explicit, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, ref_w, atol=1e-5, rtol=1e-5)
    # KV cache: a 2-token prompt, a 3-token chunk, then single tokens equal the full pass.
    cache = KVCache(max_len=T)
    parts = [ours(x[:, :2], kv_cache=cache)[0], ours(x[:, 2:5], kv_cache=cache)[0]]
    parts.append(ours(x[:, 5:], kv_cache=cache, return_weights=True)[0])
    torch.testing.assert_close(torch.cat(parts, dim=1), ref_out, atol=1e-5, rtol=1e-5)


def test_hooks_on_qkv_fire_in_training_and_evaluation() -> None:
    """Hooks and LoRA-style wrappers on the fused projection act in every mode."""
    model = _tiny()
    calls = []
    model.blocks[0].attn.qkv.register_forward_hook(lambda m, i, o: calls.append(m.training))
    model.blocks[0].attn.out_proj.register_forward_hook(lambda m, i, o: calls.append("out"))
    idx = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(10))
    model.train()
    model(idx, idx)[1].backward()
    assert calls == [True, "out"]
    calls.clear()
    model.eval()
    with torch.no_grad():
        model(idx)
    assert calls == [False, "out"]
    calls.clear()
    model.generate(idx[:, :3], 2)  # prompt, then one cached step
    assert calls == [False, "out", False, "out"]

    # A wrapper that replaces the module, as LoRA does: its extra term reaches the output.
    class Doubled(torch.nn.Module):
        def __init__(self, base: torch.nn.Linear) -> None:
            super().__init__()
            self.base = base

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * self.base(x)

    reference = _tiny()
    with torch.no_grad():
        reference.blocks[1].attn.qkv.weight.mul_(2)
        reference.blocks[1].attn.qkv.bias.mul_(2)
    model.blocks[1].attn.qkv = Doubled(model.blocks[1].attn.qkv)
    for training in (True, False):
        model.train(training)
        reference.train(training)
        with torch.set_grad_enabled(training):
            torch.testing.assert_close(model(idx)[0], reference(idx)[0])


def test_gpt_to_hf_round_trip(hf_tiny) -> None:
    ours = gpt_from_hf(hf_tiny)
    back = gpt_to_hf(ours)
    idx = torch.randint(0, 100, (2, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(back(idx).logits, hf_tiny(idx).logits, atol=1e-5, rtol=1e-5)
    for name, tensor in hf_tiny.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], tensor, msg=name)


def test_greedy_generation_matches_transformers(hf_tiny) -> None:
    ours = gpt_from_hf(hf_tiny)
    prompt = torch.randint(0, 100, (2, 5), generator=torch.Generator().manual_seed(3))
    ref = hf_tiny.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(ours.generate(prompt, 12, temperature=0.0), ref)


def test_gpt2_small_parameter_count() -> None:
    config = GPTConfig.from_name("gpt2")
    assert (config.vocab_size, config.context_length, config.d_model) == (50257, 1024, 768)
    assert (config.n_layers, config.n_heads) == (12, 12)
    with torch.device("meta"):
        model = GPT(config)
    assert model.num_parameters() == 124_439_808


def test_gpt2_init_scales_residual_projections() -> None:
    """GPT-2 paper, section 2.3: residual weights scaled by 1/sqrt(N) (N = 2 per block)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, context_length=16, d_model=256, n_layers=8, n_heads=4))
    block = model.blocks[0]
    expected = 0.02 / math.sqrt(2 * 8)
    assert block.attn.out_proj.weight.std().item() == pytest.approx(expected, rel=0.03)
    assert block.ff.linear2.weight.std().item() == pytest.approx(expected, rel=0.03)
    assert block.attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert (block.attn.qkv.bias == 0).all()


@pytest.mark.parametrize("prompt_len", [3, 16])
def test_kv_cache_generation_equals_no_cache(prompt_len: int) -> None:
    """Token for token, also after the text outgrows the 16-token context (crop + recompute)."""
    model = _tiny()
    prompt = torch.randint(0, 50, (2, prompt_len), generator=torch.Generator().manual_seed(4))
    cached = model.generate(prompt, 30, temperature=0.0, use_cache=True)
    plain = model.generate(prompt, 30, temperature=0.0, use_cache=False)
    assert cached.shape == (2, prompt_len + 30)
    assert torch.equal(cached, plain)
    # Sampling draws the same tokens from the same generator.
    kwargs = {"temperature": 0.8, "top_k": 10, "top_p": 0.9}
    a = model.generate(prompt, 20, generator=torch.Generator().manual_seed(5), **kwargs)
    b = model.generate(
        prompt, 20, use_cache=False, generator=torch.Generator().manual_seed(5), **kwargs
    )
    assert torch.equal(a, b)


def test_causality() -> None:
    model = _tiny()
    idx = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(6))
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 50
    with torch.no_grad():
        before, _ = model(idx)
        after, _ = model(changed)
    torch.testing.assert_close(after[:, :10], before[:, :10], atol=0, rtol=0)
    assert not torch.allclose(after[:, 10:], before[:, 10:])
    maps = model.attention_maps(idx)
    assert maps.shape == (2, 2, 4, 16, 16)  # (B, L, H, T, T)
    assert (maps.triu(diagonal=1) == 0).all()
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 4, 16))


def test_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, context_length=16, d_model=64, n_layers=2, n_heads=4))
    idx = torch.randint(0, 32, (4, 17), generator=torch.Generator().manual_seed(7))
    x, y = idx[:, :-1], idx[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.05


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_heads=4"):
        GPTConfig(50, 16, d_model=30, n_layers=1, n_heads=4)
    with pytest.raises(ValueError, match="unknown GPT preset 'gpt5'"):
        GPTConfig.from_name("gpt5")
    with pytest.raises(ValueError, match=r"unknown GPTConfig fields \['width'\]"):
        GPTConfig.from_name("tiny", width=3)
    assert GPTConfig.from_name("tiny", vocab_size=65).vocab_size == 65
    with pytest.raises(ValueError, match="activation='relu'"):
        GPTConfig(50, 16, d_model=32, n_layers=1, n_heads=4, activation="relu")
    assert GPTConfig.from_name("tiny").activation == "gelu"
    assert GPTConfig.from_name("gpt2-xl").activation == "gelu_tanh"
    model = _tiny()
    with pytest.raises(ValueError, match="sequence length 17 > context_length=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets shape \(1, 4\) != idx shape \(1, 5\)"):
        model(torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))
    prompt = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="top_p=1.5"):
        model.generate(prompt, 2, top_p=1.5)
    with pytest.raises(ValueError, match="top_p=0.0"):
        model.generate(prompt, 2, top_p=0.0)
    with pytest.raises(ValueError, match="temperature=-1"):
        model.generate(prompt, 2, temperature=-1)
    with pytest.raises(ValueError, match="top_k=0"):
        model.generate(prompt, 2, top_k=0)


def test_a_prefix_cached_once_and_expanded_continues_like_the_full_pass() -> None:
    model = _tiny()
    g = torch.Generator().manual_seed(3)
    prefix, rest = (
        torch.randint(0, 50, (1, 5), generator=g),
        torch.randint(0, 50, (3, 4), generator=g),
    )
    with torch.no_grad():
        caches = [KVCache(5) for _ in model.blocks]
        model._hidden(prefix, caches)
        h, _ = model._hidden(rest, [c.expanded(3, 4) for c in caches])  # (3, 4, C)
        full, _ = model._hidden(torch.cat([prefix.expand(3, -1), rest], dim=1))  # (3, 9, C)
    torch.testing.assert_close(h, full[:, 5:], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="filled cache of one row"):
        KVCache(4).expanded(2, 1)
