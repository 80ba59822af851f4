"""Measuring memorisation with canaries and their exposure (chapter 15).

Carlini et al., "The Secret Sharer: Evaluating and Testing Unintended Memorization in Neural
Networks", USENIX Security 2019, https://arxiv.org/abs/1802.08232: insert a *canary*, a format
with a random secret such as "the secret number is 374925", into the training data; after
training, rank the true secret among all candidate secrets r of the randomness space R by the
model's log-perplexity of the filled-in format,

    Px(s[r]) = -log2 P(s[r]) = sum_i -log2 P(x_i | x_<i),

and report the **exposure**

    exposure(r*) = log2 |R| - log2 rank(r*),

where rank 1 is the candidate with the lowest log-perplexity. A model that never saw the canary
ranks it uniformly at random (expected exposure about 1 / ln 2 = 1.44 bits); a model that has
memorised it ranks it first (exposure log2 |R|, 19.93 bits for six digits).

- ``insert_canary``: put the canary into a text k times, at line boundaries.
- ``secret_log_perplexities``: Px of every secret of ``n_digits`` digits under a ``gpt.GPT``,
  computed in one pass over the ``10 ** (n_digits - 1)`` digit prefixes with a shared KV cache.
- ``rank_of`` and ``exposure``: the rank and the exposure of a secret, given all candidates' Px.
- ``estimated_exposure``: the rank estimated from a random sample of candidates, for randomness
  spaces too large to enumerate.

Shape legend: B batch, T time, V vocabulary, L layers.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from llmbook_utils.attention import KVCache
from llmbook_utils.gpt import GPT


def insert_canary(text: str, canary: str, k: int, seed: int = 0) -> str:
    """``text`` with ``canary`` inserted as its own line ``k`` times, at random line breaks.

    Args:
        text: the training text.
        canary: the line to insert (without a newline).
        k: how many copies, >= 0; distinct positions are used while there are enough lines.
        seed: chooses the positions.

    Returns:
        The text with k more lines; ``k = 0`` returns ``text`` unchanged.
    """
    if k < 0:
        raise ValueError(f"k={k} must be >= 0")
    if "\n" in canary:
        raise ValueError("the canary must be a single line")
    if k == 0:
        return text
    lines = text.split("\n")
    rng = random.Random(seed)
    if k <= len(lines) + 1:
        slots = sorted(rng.sample(range(len(lines) + 1), k))
    else:
        slots = sorted(rng.choices(range(len(lines) + 1), k=k))
    for offset, slot in enumerate(slots):  # each insertion shifts the later slots by one
        lines.insert(slot + offset, canary)
    return "\n".join(lines)


@torch.no_grad()
def secret_log_perplexities(
    model: GPT,
    prefix_ids: list[int],
    digit_ids: list[int],
    n_digits: int,
    batch_size: int = 10_000,
) -> Tensor:
    """Px (in bits) of every secret of ``n_digits`` digits after ``prefix_ids``, by a GPT.

    Only the digits' log-probabilities are summed: the prefix's own log-perplexity is the same
    for every candidate, so it changes no rank. The log-probability of a secret d_1..d_m is
    ``sum_j log P(d_j | prefix, d_<j)``, and the strings share their beginnings: the model
    walks the tree of digit strings level by level. The prefix is run once; level j feeds one
    new digit to each of the ``10 ** j`` strings of j digits, on top of its parent's keys and
    values (the string without its last digit), and its output is the distribution of the next
    digit. Every position is computed once, ``10 + 100 + ... + 10 ** (m - 1)`` in all, about
    1.1 per string of ``m - 1`` digits instead of ``m - 1`` for each.

    Args:
        model: a ``gpt.GPT`` with ``len(prefix_ids) + n_digits - 1 <= context_length``.
        prefix_ids: the tokens before the secret, e.g. "the secret number is ".
        digit_ids: the token ids of the characters "0" .. "9", in that order.
        n_digits: m >= 1.
        batch_size: digit strings per forward pass. The keys and values of level m - 2
            (``10 ** (m - 2)`` strings) are kept for the last level.

    Returns:
        (10 ** m,) float64 log-perplexities; entry r is the secret ``f"{r:0{m}d}"``.
    """
    if len(digit_ids) != 10:
        raise ValueError(f"digit_ids must hold the 10 ids of '0'..'9', got {len(digit_ids)}")
    if n_digits < 1 or not prefix_ids:
        raise ValueError(f"need n_digits={n_digits} >= 1 and a non-empty prefix")
    P, m = len(prefix_ids), n_digits
    if P + m - 1 > model.config.context_length:
        raise ValueError(
            f"prefix ({P}) + {m - 1} digits exceeds the context of {model.config.context_length}"
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    digits = torch.tensor(digit_ids, device=device)  # (10,)
    prefix = torch.tensor([prefix_ids], device=device)  # (1, P)

    # The prefix once: its keys and values, and its last position's distribution over d_1.
    caches = [KVCache(P) for _ in model.blocks]
    first = F.log_softmax(model._last_logits(prefix, caches), dim=-1)[0, digits]  # (10,)
    total = first.double().cpu()  # log P of every string of j digits, here j = 1
    parents = [caches]  # the caches of level j - 1, in chunks of consecutive strings
    per_chunk = max(1, batch_size // 10)  # parents per forward pass: 10 children each
    for j in range(1, m):  # the strings of j digits predict digit j + 1
        keep = j < m - 1  # their keys and values are the next level's parents
        children, logps = [], []
        for chunk in parents:
            for s in range(0, chunk[0].keys.size(0), per_chunk):
                e = min(s + per_chunk, chunk[0].keys.size(0))
                kids = [KVCache(P + j) for _ in model.blocks]
                for kid, parent in zip(kids, chunk, strict=True):
                    kid.update(
                        parent.keys[s:e, :, : parent.length].repeat_interleave(10, 0),
                        parent.values[s:e, :, : parent.length].repeat_interleave(10, 0),
                    )
                ids = digits.repeat(e - s)[:, None]  # (10 (e - s), 1): child i ends in digit i % 10
                h, _ = model._hidden(ids, kids)  # (10 (e - s), 1, C), position P + j - 1
                logp = F.log_softmax(model.lm_head(h[:, -1]), dim=-1)[:, digits]  # (rows, 10)
                logps.append(logp.double().cpu())
                if keep:
                    children.append(kids)
        # string r (j digits) followed by digit d is string 10 r + d (j + 1 digits)
        total = (total[:, None] + torch.cat(logps)).flatten()  # (10 ** (j + 1),)
        parents = children
    model.train(was_training)
    return -total / math.log(2)  # nats -> bits, (10**m,)


@torch.no_grad()
def candidate_log_perplexities(
    model: GPT, prefix_ids: list[int], candidates: list[list[int]], batch_size: int = 512
) -> Tensor:
    """Px (in bits) of each candidate secret after ``prefix_ids``, one full forward pass each.

    The direct computation, for a sample of candidates (or to check
    ``secret_log_perplexities``): the model reads ``prefix + candidate`` and the candidate's
    tokens' negative log-probabilities are summed.

    Args:
        model: a ``gpt.GPT``.
        prefix_ids: the tokens before the secret.
        candidates: equally long token-id lists, one per candidate.
        batch_size: candidates per forward pass.

    Returns:
        (len(candidates),) float64 log-perplexities in bits.
    """
    if not candidates or len({len(c) for c in candidates}) != 1:
        raise ValueError("candidates must be a non-empty list of equally long token lists")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    P = len(prefix_ids)
    out = []
    for start in range(0, len(candidates), batch_size):
        rows = [prefix_ids + c for c in candidates[start : start + batch_size]]
        ids = torch.tensor(rows, device=device)  # (b, P + m)
        logits, _ = model(ids[:, :-1])  # (b, P + m - 1, V)
        logp = F.log_softmax(logits[:, P - 1 :].double(), dim=-1)  # predictions of the secret
        target = ids[:, P:]  # (b, m)
        out.append(-logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(-1).cpu())
    model.train(was_training)
    return torch.cat(out) / math.log(2)


def ranks_of(log_perplexities: Tensor | np.ndarray, indices) -> Tensor:
    """Ranks of the candidates ``indices`` (int64, like them): 1 + the number of candidates
    with a strictly lower Px, for all of them at once (one sort of the candidates)."""
    px = torch.as_tensor(log_perplexities)
    idx = torch.as_tensor(indices, dtype=torch.long)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= px.numel()):
        raise ValueError(f"indices must lie in [0, {px.numel()}), got {idx.min()}..{idx.max()}")
    return torch.searchsorted(px.sort().values, px[idx], side="left") + 1


def rank_of(log_perplexities: Tensor | np.ndarray, index: int) -> int:
    """Rank of candidate ``index``: 1 + the number of candidates with a strictly lower Px."""
    px = torch.as_tensor(log_perplexities)
    if not 0 <= index < px.numel():
        raise ValueError(f"index={index} is outside the {px.numel()} candidates")
    return int(ranks_of(px, [index])[0])


def exposures(log_perplexities: Tensor | np.ndarray, indices) -> np.ndarray:
    """``exposure`` of each candidate in ``indices`` (float64), from one sort."""
    px = torch.as_tensor(log_perplexities)
    ranks = ranks_of(px, indices).double()
    return (math.log2(px.numel()) - torch.log2(ranks)).numpy()


def exposure(log_perplexities: Tensor | np.ndarray, index: int) -> float:
    """Exposure log2 |R| - log2 rank of candidate ``index`` among all of R (Carlini et al.)."""
    px = torch.as_tensor(log_perplexities)
    return math.log2(px.numel()) - math.log2(rank_of(px, index))


def estimated_exposure(
    true_log_perplexity: float, sample_log_perplexities: Tensor | np.ndarray, space_size: int
) -> float:
    """Exposure with the rank estimated from a uniform sample of the randomness space.

    The fraction of sampled candidates with a lower Px estimates the fraction of the whole
    space that ranks above the canary, so rank ~ 1 + |R| * fraction (Carlini et al. section 4.3
    refine this with a fitted distribution; the plain estimate is enough when the canary is not
    far in the tail). The estimate is capped at log2 |R|.

    Args:
        true_log_perplexity: Px of the canary's secret.
        sample_log_perplexities: (S,) Px of candidates drawn uniformly from R.
        space_size: |R|.
    """
    sample = torch.as_tensor(sample_log_perplexities)
    if sample.numel() == 0 or space_size < 1:
        raise ValueError(f"need a non-empty sample and space_size={space_size} >= 1")
    fraction = float((sample < true_log_perplexity).double().mean())
    rank = 1.0 + fraction * (space_size - 1)
    return math.log2(space_size) - math.log2(rank)
