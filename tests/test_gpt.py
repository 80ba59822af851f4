"""GPT checked against transformers' GPT2LMHeadModel, GPT-2's parameter count and LM properties."""

from __future__ import annotations

import math

import pytest
import torch

from llmbook_utils.gpt import GPT, GPTConfig, next_token_distribution
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
    assert block.attn.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert (block.attn.q_proj.bias == 0).all()


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


def test_next_token_distribution() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.testing.assert_close(next_token_distribution(logits), torch.exp(logits))
    top_k = next_token_distribution(logits, top_k=2)
    torch.testing.assert_close(top_k, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    # Nucleus 0.7: 0.5 alone is not enough, 0.5 + 0.3 is: keep those two.
    torch.testing.assert_close(next_token_distribution(logits, top_p=0.7), top_k)
    torch.testing.assert_close(next_token_distribution(logits, top_p=0.1)[0, 0], torch.tensor(1.0))
    sharp = next_token_distribution(logits, temperature=0.5)
    expected = torch.tensor([0.5, 0.3, 0.15, 0.05]) ** 2
    torch.testing.assert_close(sharp[0], expected / expected.sum())
    assert next_token_distribution(logits, temperature=0.0).tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_heads=4"):
        GPTConfig(50, 16, d_model=30, n_layers=1, n_heads=4)
    with pytest.raises(ValueError, match="unknown GPT preset 'gpt5'"):
        GPTConfig.from_name("gpt5")
    with pytest.raises(ValueError, match=r"unknown GPTConfig fields \['width'\]"):
        GPTConfig.from_name("tiny", width=3)
    assert GPTConfig.from_name("tiny", vocab_size=65).vocab_size == 65
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
