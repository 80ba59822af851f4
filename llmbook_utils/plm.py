"""Permutation language modelling (XLNet): factorisation orders as attention masks.

XLNet (Yang et al., 2019, https://arxiv.org/abs/1906.08237) maximises the likelihood of a text
under a random *factorisation order* z, a permutation of the positions:
``log p(x) = sum_t log p(x_{z_t} | x_{z_<t})``. The tokens stay where they are (with their
position embeddings); only the attention mask changes, so that position ``z_t`` sees exactly the
positions ``z_1 .. z_{t-1}`` that come before it in the order.

Two streams make this work. The *query stream* of a position knows where it is but not what
token it holds (it must predict that token), so it may attend only to positions strictly earlier
in the order. The *content stream* is the ordinary representation, which may also see its own
token; later positions in the order read it. ``permutation_masks`` returns both masks.

With *partial prediction* (XLNet predicts only the last tokens of the order, Hugging Face's
collator a 1/6 share of spans) the non-target tokens are pure context: every position may see
them, and they come first in the order, so they see no target. ``query_mask`` is then the
complement of ``transformers``' ``DataCollatorForPermutationLanguageModeling`` ``perm_mask``
(there 1 means "may not attend") for the same order and targets.

Masks follow the book's convention: True = may attend. Shape legend: B batch, T time.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_factorisation_order(
    seq_len: int, batch_size: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Random factorisation orders: ``order[t]`` is the position predicted at step t.

    Args:
        seq_len: T, the number of positions.
        batch_size: B for a batch of independent orders (B, T); None for one order (T,).
        generator: a ``torch.Generator`` for reproducible orders.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len={seq_len} must be >= 1")
    if batch_size is None:
        return torch.randperm(seq_len, generator=generator)
    return torch.stack([torch.randperm(seq_len, generator=generator) for _ in range(batch_size)])


def order_to_ranks(order: Tensor) -> Tensor:
    """The inverse permutation: ``ranks[p]`` is the step at which position ``p`` is predicted.

    Args:
        order: (T,) or (B, T), each row a permutation of 0..T-1.
    """
    if order.dim() not in (1, 2):
        raise ValueError(f"order must be (T,) or (B, T); got {tuple(order.shape)}")
    expected = torch.arange(order.size(-1), device=order.device)
    if not torch.equal(order.sort(dim=-1).values, expected.expand_as(order)):
        raise ValueError("every row of order must be a permutation of 0..T-1")
    return order.argsort(dim=-1)


def permutation_masks(order: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The content-stream and query-stream attention masks of a factorisation order.

    With ``r`` the rank of each position in ``order`` (non-targets ranked before all targets):

    - query stream: i may attend to j  iff  j is not a target, or r[j] < r[i];
    - content stream: the same, and also j = i (a position sees its own token).

    Args:
        order: (T,) or (B, T) factorisation orders (``order[t]`` = the position of step t).
        targets: (T,) or (B, T) booleans, the positions to predict; None: all of them (full
            permutation language modelling).

    Returns:
        ``(content_mask, query_mask)``, each (T, T) or (B, T, T) booleans, True = may attend;
        row i is the query position, column j the key position.
    """
    ranks = order_to_ranks(order)  # (..., T)
    if targets is None:
        targets = torch.ones_like(ranks, dtype=torch.bool)
    if targets.shape != ranks.shape or targets.dtype != torch.bool:
        raise ValueError(
            f"targets must be booleans of shape {tuple(ranks.shape)}; got "
            f"{tuple(targets.shape)} {targets.dtype}"
        )
    ranks = ranks.masked_fill(~targets, -1)  # context first: seen by all, sees no target
    earlier = ranks.unsqueeze(-1) > ranks.unsqueeze(-2)  # (..., T, T): r[i] > r[j]
    query = earlier | ~targets.unsqueeze(-2)  # non-target keys are visible to every query
    eye = torch.eye(ranks.size(-1), dtype=torch.bool, device=ranks.device)
    return query | eye, query
