"""Decoding: the sampling filters, and beam search checked against transformers' generate."""

from __future__ import annotations

import pytest
import torch

from llmbook_utils.decoding import beam_search, next_token_distribution
from llmbook_utils.gpt import GPT, GPTConfig
from llmbook_utils.hf import gpt_from_hf

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_thread")

V, EOS, NEW = 12, 3, 10


@pytest.fixture(scope="module")
def models():
    """A tiny GPT2LMHeadModel with large random weights (peaked, varied distributions, so the
    beams differ and EOS often wins) and our GPT with the same weights."""
    torch.manual_seed(2)
    config = transformers.GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=32,
        vocab_size=V,
        bos_token_id=None,
        eos_token_id=None,
        initializer_range=0.3,
    )
    hf = transformers.GPT2LMHeadModel(config).eval()
    return hf, gpt_from_hf(hf)


def _reference(hf, prompt, beam_width, length_penalty, early_stopping, eos, returned):
    return hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=NEW,
        num_beams=beam_width,
        do_sample=False,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
        eos_token_id=eos,
        pad_token_id=EOS,
        num_return_sequences=returned,
        return_dict_in_generate=True,
        output_scores=True,
    )


SETTINGS = [  # beam_width, length_penalty, early_stopping, eos_token_id, num_return_sequences
    (3, 1.0, False, EOS, 2),  # transformers' defaults
    (4, 0.0, True, EOS, 3),  # plain log-probabilities, stop once 4 hypotheses are complete
    (3, -1.0, "never", EOS, 2),  # favours short hypotheses
    (2, 2.0, False, EOS, 1),  # favours long ones
    (3, 1.0, False, None, 3),  # no EOS: every beam runs to the end
]


@pytest.mark.parametrize("setting", SETTINGS)
def test_beam_search_matches_transformers(models, setting) -> None:
    hf, ours = models
    beam_width, length_penalty, early_stopping, eos, returned = setting
    prompt = torch.randint(0, V, (3, 4), generator=torch.Generator().manual_seed(2))
    ref = _reference(hf, prompt, beam_width, length_penalty, early_stopping, eos, returned)
    out = beam_search(
        ours,
        prompt,
        NEW,
        beam_width,
        length_penalty=length_penalty,
        eos_token_id=eos,
        early_stopping=early_stopping,
        num_return_sequences=returned,
        pad_token_id=EOS,
    )
    assert out.sequences.shape[:2] == (3, returned)
    assert torch.equal(out.sequences.flatten(0, 1), ref.sequences)  # same tokens
    torch.testing.assert_close(out.scores.flatten(), ref.sequences_scores, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.scores, out.log_probs / out.lengths**length_penalty)


def test_beam_search_exercises_eos_and_reports_log_probs(models) -> None:
    """Hypotheses that end with EOS come back shorter; log_probs is sum ln p(x_t | x_<t)."""
    hf, ours = models
    prompt = torch.randint(0, V, (3, 4), generator=torch.Generator().manual_seed(2))
    out = beam_search(ours, prompt, NEW, 3, length_penalty=-1.0, eos_token_id=EOS, pad_token_id=0)
    short = out.lengths < NEW
    assert short.any()  # the settings above test the EOS rules, not only the length limit
    for b, r in short.nonzero().tolist():
        n = out.lengths[b, r].item()
        assert out.sequences[b, r, 4 + n - 1] == EOS and (out.sequences[b, r, 4 + n :] == 0).all()
    sequences = out.sequences[:, 0]
    with torch.no_grad():  # the reference: transformers' own log-probabilities of the tokens
        log_p = hf(sequences).logits[:, :-1].log_softmax(-1)
    picked = log_p.gather(-1, sequences[:, 1:, None])[..., 0][:, 3:]  # the new tokens only
    positions = torch.arange(picked.size(1))[None, :] < out.lengths[:, 0, None]
    torch.testing.assert_close(out.log_probs[:, 0], (picked * positions).sum(1))
    # Any model returning logits works: transformers' model itself gives the same result.
    theirs = beam_search(hf, prompt, NEW, 3, length_penalty=-1.0, eos_token_id=EOS, pad_token_id=0)
    assert torch.equal(theirs.sequences, out.sequences)


def test_beam_width_one_is_greedy() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, context_length=8, d_model=16, n_layers=1, n_heads=2))
    prompt = torch.randint(0, 20, (2, 3), generator=torch.Generator().manual_seed(1))
    greedy = model.generate(prompt, 9, temperature=0.0)  # outgrows the 8-token context too
    assert torch.equal(beam_search(model, prompt, 9, beam_width=1).sequences[:, 0], greedy)


def test_beam_search_bad_inputs() -> None:
    model = GPT(GPTConfig(vocab_size=20, context_length=8, d_model=16, n_layers=1, n_heads=2))
    prompt = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="beam_width=0"):
        beam_search(model, prompt, 4, 0)
    with pytest.raises(ValueError, match="num_return_sequences=3"):
        beam_search(model, prompt, 4, 2, num_return_sequences=3)
    with pytest.raises(ValueError, match="early_stopping='always'"):
        beam_search(model, prompt, 4, 2, early_stopping="always")
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        beam_search(model, prompt[0], 4, 2)


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
