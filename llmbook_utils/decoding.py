"""Choosing the next tokens: sampling filters and beam search, for any decoder-only model.

- ``next_token_distribution``: temperature, top-k and top-p (nucleus) filtering of the logits;
  ``GPT.generate`` samples from it.
- ``sample_tokens``: the sampling loop with a KV cache; ``SamplingMixin.generate`` runs it for
  ``GPT`` and ``Llama``.
- ``beam_search``: keeps the ``beam_width`` most probable continuations at every step instead
  of one, the deterministic search of machine translation (Sutskever et al., 2014,
  https://arxiv.org/abs/1409.3215; length penalty of Wu et al., 2016,
  https://arxiv.org/abs/1609.08144). It follows the rules of Hugging Face's
  ``generate(num_beams=..., do_sample=False)`` and gives the same tokens.

Both work on any model whose forward pass takes token ids (B, T) and returns ``(logits, loss)``
or an object with ``.logits``.

Shape legend: B batch, T time, V vocabulary, K beams, R returned sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ValueError for sampling settings outside their ranges."""
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 = greedy)")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k} must be >= 1")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p} must be in (0, 1]")


def next_token_distribution(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Probabilities of the next token after temperature, top-k and top-p (nucleus) filtering.

    Args:
        logits: (B, V) scores of the next token.
        temperature: divides the logits; < 1 sharpens, > 1 flattens; 0 means greedy (all the
            probability on the most likely token).
        top_k: keep only the k most likely tokens.
        top_p: keep the smallest set of most likely tokens whose probability sums to >= top_p
            (Holtzman et al., 2019, https://arxiv.org/abs/1904.09751).

    Returns:
        (B, V) probabilities, rows summing to 1.
    """
    check_sampling(temperature, top_k, top_p)
    if temperature == 0.0:
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).to(logits.dtype)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1), the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)  # (B, V)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # probability of better tokens
        sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)  # the top one stays
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def check_token_ids(idx: Tensor, context_length: int) -> None:
    """Raise a ``ValueError`` unless ``idx`` is (B, T) integer ids with 1 <= T <= context_length."""
    if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int) or idx.size(1) < 1:
        raise ValueError(
            f"idx must be integer token ids of shape (B, T), got {tuple(idx.shape)} "
            f"of dtype {idx.dtype}"
        )
    if idx.size(1) > context_length:
        raise ValueError(f"sequence length {idx.size(1)} > context_length={context_length}")


def sample_tokens(
    last_logits: Callable[[Tensor, list | None], Tensor],
    idx: Tensor,
    max_new_tokens: int,
    context_length: int,
    n_layers: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Continue ``idx`` one token at a time, with or without a KV cache (same tokens either way).

    With a cache the prompt is run once and every later step feeds only the newest token, whose
    query attends to the cached keys and values. Once the text fills the context, the oldest
    tokens are cropped and the last ``context_length`` tokens are recomputed, exactly as
    without a cache. The caches hold at most ``min(context_length, T + max_new_tokens)``
    positions, so a long context window costs no memory that a short generation does not use.

    Args:
        last_logits: ``last_logits(ids, caches)`` runs the model on ids (B, t) with one
            ``KVCache`` per layer (or ``None``) and returns the last position's logits (B, V).
        idx: prompt ids (B, T); only its last ``context_length`` tokens are read.
        max_new_tokens: how many tokens to append (>= 0).
        context_length: the model's context window.
        n_layers: how many caches (one per layer).
        temperature: sampling temperature; ``0.0`` means greedy decoding (argmax).
        top_k: sample only among the k most likely tokens.
        top_p: nucleus sampling threshold in (0, 1].
        use_cache: use the KV cache (faster; identical results).
        generator: optional ``torch.Generator`` for reproducible sampling.

    Returns:
        (B, T + max_new_tokens) ids: the prompt followed by the new tokens.
    """
    from llmbook_utils.attention import KVCache

    if idx.dim() != 2:
        raise ValueError(f"idx must be a (B, T) prompt, got shape {tuple(idx.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 0")
    check_sampling(temperature, top_k, top_p)
    cache_len = min(context_length, idx.size(1) + max_new_tokens)
    caches: Sequence | None = [KVCache(cache_len) for _ in range(n_layers)] if use_cache else None
    logits = last_logits(idx[:, -context_length:], caches)  # (B, V)
    for step in range(max_new_tokens):
        if temperature == 0.0:
            next_id = logits.argmax(dim=-1, keepdim=True)  # greedy: (B, V) -> (B, 1)
        else:
            probs = next_token_distribution(logits, temperature, top_k, top_p)
            next_id = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T) -> (B, T + 1)
        if step == max_new_tokens - 1:
            break
        if caches is not None and caches[0].length < cache_len:
            logits = last_logits(next_id, caches)  # one new token, cached past
        else:  # no cache, or the context is full: crop and recompute
            for cache in caches or ():
                cache.reset()
            logits = last_logits(idx[:, -context_length:], caches)
    return idx


class SamplingMixin:
    """``generate`` for a decoder that has ``config.context_length``, ``blocks``,
    ``_check_idx(idx)`` and ``_last_logits(idx, kv_caches)``: ``GPT`` and ``Llama``."""

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue ``idx`` by sampling one token at a time (evaluation mode).

        With ``use_cache`` the prompt is run once and every later step feeds only the newest
        token, whose query attends to the cached keys and values (``KVCache``, sized to what
        the text will reach, at most ``context_length``). Once the text fills the context, the
        oldest tokens are cropped and the last ``context_length`` tokens are recomputed, exactly
        as without a cache, so both give the same tokens.

        Args:
            idx: prompt ids (B, T); only its last ``context_length`` tokens are read.
            max_new_tokens: how many tokens to append.
            temperature: sampling temperature; ``0.0`` means greedy decoding (argmax).
            top_k: sample only among the k most likely tokens.
            top_p: nucleus sampling threshold in (0, 1].
            use_cache: use the KV cache (faster; identical results).
            generator: optional ``torch.Generator`` (on the model's device) for reproducible
                sampling.

        Returns:
            (B, T + max_new_tokens) ids: the prompt followed by the new tokens.
        """
        context_length = self.config.context_length
        if idx.dim() == 2:
            self._check_idx(idx[:, -context_length:])
        was_training = self.training
        self.eval()
        try:
            return sample_tokens(
                self._last_logits, idx, max_new_tokens, context_length, len(self.blocks),
                temperature, top_k, top_p, use_cache, generator,
            )  # fmt: skip
        finally:
            self.train(was_training)


@dataclass
class BeamSearchOutput:
    """What ``beam_search`` returns, best sequence first in every row.

    Attributes:
        sequences: (B, R, T + n) ids: the prompt and the new tokens; a sequence that ended with
            EOS before the longest one is padded after its EOS.
        scores: (B, R), each sequence's log-probability divided by ``length ** length_penalty``
            (what the search ranks by; Hugging Face's ``sequences_scores``).
        log_probs: (B, R), the log-probability of the new tokens, sum_t ln p(x_t | x_<t).
        lengths: (B, R), the number of new tokens (EOS included).
    """

    sequences: Tensor
    scores: Tensor
    log_probs: Tensor
    lengths: Tensor


def _next_log_probs(model: nn.Module, ids: Tensor) -> Tensor:
    """ln p(next token | ids) for each row: (K, T) -> (K, V), in float32."""
    context = getattr(getattr(model, "config", None), "context_length", None)
    if context is not None:
        ids = ids[:, -context:]  # the model reads at most its context
    out = model(ids)
    logits = out.logits if hasattr(out, "logits") else out[0]  # (K, T, V)
    return F.log_softmax(logits[:, -1].float(), dim=-1)  # (K, V)


def _beam_search_one(
    model: nn.Module,
    prompt: Tensor,
    max_new_tokens: int,
    beam_width: int,
    length_penalty: float,
    eos_token_id: int | None,
    early_stopping: bool | str,
) -> list[tuple[float, float, Tensor]]:
    """Beam search from one prompt (T,): up to K (score, log_prob, new tokens), best first."""
    K = beam_width
    beams = prompt[None, :]  # (1, T): the search starts from the prompt alone
    beam_log_probs = torch.zeros(1, device=prompt.device)  # (1,)
    finished: list[tuple[float, float, Tensor]] = []  # the K best complete hypotheses
    for step in range(max_new_tokens):
        n_new = step + 1  # new tokens in every candidate of this step
        log_probs = _next_log_probs(model, beams) + beam_log_probs[:, None]  # (K, V)
        V = log_probs.size(-1)
        # 2K candidates, so that K survive even if K of them end with EOS.
        top, flat = log_probs.flatten().topk(min(2 * K, log_probs.numel()))  # (2K,)
        beam_idx, token = flat // V, flat % V  # which beam each extends, with which token
        candidates = torch.cat([beams[beam_idx], token[:, None]], dim=1)  # (2K, T + n_new)
        ends = token == eos_token_id if eos_token_id is not None else torch.zeros_like(token)
        ends = ends.bool() | (n_new == max_new_tokens)  # at the last step every beam ends

        # Only the K best candidates may become final; an EOS further down is discarded.
        for rank in range(min(K, len(top))):
            if not ends[rank] or (early_stopping is True and len(finished) == K):
                continue
            score = top[rank].item() / n_new**length_penalty
            finished.append((score, top[rank].item(), candidates[rank, prompt.numel() :]))
        finished = sorted(finished, key=lambda h: h[0], reverse=True)[:K]

        keep = (~ends).nonzero().flatten()[:K]  # the K best candidates that go on
        if len(keep) == 0:
            break
        beams, beam_log_probs = candidates[keep], top[keep]  # (K, T + n_new), (K,)
        if len(finished) == K:
            if early_stopping is True:
                break  # K hypotheses are complete: stop at once
            # Could the best open beam still beat the worst finished one? Hugging Face's
            # heuristic: assume it stops now ("never": at max_new_tokens if that scores better).
            length = max_new_tokens if early_stopping == "never" and length_penalty > 0 else n_new
            if beam_log_probs[0].item() / length**length_penalty <= finished[-1][0]:
                break
    return finished


@torch.no_grad()
def beam_search(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    beam_width: int,
    length_penalty: float = 1.0,
    eos_token_id: int | None = None,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    pad_token_id: int | None = None,
) -> BeamSearchOutput:
    """The most probable continuations found by keeping ``beam_width`` beams at every step.

    At each step every beam is extended by every token; of the K * V candidates the 2K with the
    highest total log-probability are ranked. Those among the first K that end with
    ``eos_token_id`` (or reach ``max_new_tokens``) become complete hypotheses, scored
    log p / length ** length_penalty; the K best others are the next beams. The search stops
    at ``max_new_tokens``, or once K hypotheses are complete and (``early_stopping=False``) no
    open beam can beat the worst of them, or (``early_stopping=True``) at once. These are the
    rules of ``transformers``' ``generate(num_beams=K, do_sample=False, length_penalty=...,
    early_stopping=...)``, which gives the same sequences.

    The model is run on the whole text at every step (no KV cache), so this works with any
    model returning ``(logits, loss)`` (or ``.logits``) from token ids; models with a
    ``config.context_length`` read only the last ``context_length`` tokens.

    Args:
        model: a decoder-only language model (our ``GPT``, ``Llama``, or a ``transformers``
            causal LM); it is put in evaluation mode for the search and restored afterwards.
        idx: prompts (B, T).
        max_new_tokens: the most tokens to append.
        beam_width: K, the number of beams (1 is greedy decoding).
        length_penalty: exponent of the length that divides the log-probability of a complete
            hypothesis; > 0 favours longer ones, 0 compares plain log-probabilities.
        eos_token_id: the token that ends a hypothesis (None: all run to ``max_new_tokens``).
        early_stopping: True, False or ``"never"``, as in ``transformers``.
        num_return_sequences: R <= K, how many of the best hypotheses to return.
        pad_token_id: fills a sequence after its end; defaults to ``eos_token_id`` (else 0).

    Returns:
        A ``BeamSearchOutput``; ``out.sequences[:, 0]`` holds the best sequence of each prompt.
    """
    if idx.dim() != 2 or idx.size(1) < 1:
        raise ValueError(f"idx must be a (B, T) prompt, got shape {tuple(idx.shape)}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
    if beam_width < 1:
        raise ValueError(f"beam_width={beam_width} must be >= 1")
    if not 1 <= num_return_sequences <= beam_width:
        raise ValueError(
            f"num_return_sequences={num_return_sequences} must be in [1, beam_width={beam_width}]"
        )
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping={early_stopping!r} must be True, False or 'never'")
    pad = pad_token_id if pad_token_id is not None else (eos_token_id or 0)
    was_training = model.training
    model.eval()
    rows = [
        _beam_search_one(
            model, prompt, max_new_tokens, beam_width, length_penalty, eos_token_id, early_stopping
        )[:num_return_sequences]
        for prompt in idx
    ]
    model.train(was_training)

    longest = max(len(h[2]) for row in rows for h in row)
    B, R, T = idx.size(0), num_return_sequences, idx.size(1)
    sequences = torch.full((B, R, T + longest), pad, dtype=idx.dtype, device=idx.device)
    sequences[:, :, :T] = idx[:, None, :]
    scores = torch.zeros(B, R)
    log_probs = torch.zeros(B, R)
    lengths = torch.zeros(B, R, dtype=torch.long)
    for b, row in enumerate(rows):
        for r, (score, log_prob, tokens) in enumerate(row):
            sequences[b, r, T : T + len(tokens)] = tokens
            scores[b, r], log_probs[b, r], lengths[b, r] = score, log_prob, len(tokens)
    return BeamSearchOutput(sequences, scores, log_probs, lengths)
