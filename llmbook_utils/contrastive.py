"""Contrastive learning of sentence embeddings: InfoNCE, SimCSE, alignment, uniformity, recall.

- ``info_nce(queries, keys, temperature)``: the InfoNCE loss of van den Oord et al., 2018
  (https://arxiv.org/abs/1807.03748) on cosine similarities, with in-batch negatives: row ``i``
  of ``queries`` must pick key ``i`` out of all the keys. Equal to sentence-transformers'
  ``MultipleNegativesRankingLoss`` with ``scale = 1 / temperature``.
- ``SimCSE``: unsupervised SimCSE (Gao et al., 2021, https://arxiv.org/abs/2104.08821). Each
  sentence is encoded twice with dropout on; the two views are a positive pair, the other
  sentences of the batch the negatives.
- ``alignment`` and ``uniformity``: the two properties of Wang and Isola, 2020
  (https://arxiv.org/abs/2005.10242) that a good contrastive embedding trades off.
- ``recall_at_k``: retrieval quality when a query may have several correct candidates.

Shape legend: B batch (queries), M keys or candidates (M >= B), T time (tokens), C channels
(embedding width).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.bert import Bert
from llmbook_utils.classifier import mean_pool


def info_nce(queries: Tensor, keys: Tensor, temperature: float = 0.05) -> Tensor:
    """InfoNCE with cosine similarity and in-batch negatives.

    ``loss = mean_i -log( exp(s_ii / tau) / sum_j exp(s_ij / tau) )`` with
    ``s_ij = cos(queries_i, keys_j)``: a cross-entropy over the keys whose target for query
    ``i`` is key ``i``. Keys beyond the first B (rows B..M-1) are extra negatives for every
    query, e.g. hard negatives.

    Args:
        queries: (B, C) embeddings.
        keys: (M, C) embeddings, M >= B; ``keys[i]`` is the positive of ``queries[i]``.
        temperature: tau > 0; sentence-transformers' ``scale`` is ``1 / tau``.

    Returns:
        The mean loss, a scalar, in nats.
    """
    if queries.dim() != 2 or keys.dim() != 2 or queries.size(1) != keys.size(1):
        raise ValueError(
            f"queries (B, C) and keys (M, C) must share C; got {tuple(queries.shape)} "
            f"and {tuple(keys.shape)}"
        )
    if keys.size(0) < queries.size(0):
        raise ValueError(f"need M={keys.size(0)} keys >= B={queries.size(0)} queries")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    scores = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T  # (B, M) cosines
    targets = torch.arange(queries.size(0), device=queries.device)
    return F.cross_entropy(scores / temperature, targets)


def alignment(x: Tensor, y: Tensor, alpha: float = 2.0) -> Tensor:
    """Mean distance between positive pairs, ``E ||f(x) - f(y)||^alpha`` (lower is better).

    Args:
        x, y: (B, C) embeddings, row ``i`` of each a positive pair; L2-normalised here.
        alpha: the power (2 in Wang and Isola's experiments).
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must both be (B, C); got {tuple(x.shape)}, {tuple(y.shape)}")
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x - y).norm(dim=1).pow(alpha).mean()


def uniformity(x: Tensor, t: float = 2.0) -> Tensor:
    """``log E exp(-t ||f(x) - f(y)||^2)`` over all distinct pairs (lower is more uniform).

    The logarithm of the mean Gaussian potential between embeddings on the unit sphere: it
    reaches its minimum when the points spread uniformly over the sphere.

    Args:
        x: (B, C) embeddings, B >= 2; L2-normalised here.
        t: the potential's scale (2 in Wang and Isola's experiments).
    """
    if x.dim() != 2 or x.size(0) < 2:
        raise ValueError(f"x must be (B, C) with B >= 2; got {tuple(x.shape)}")
    x = F.normalize(x, dim=-1)
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()  # over the B(B-1)/2 pairs


@torch.no_grad()
def recall_at_k(
    queries: Tensor, candidates: Tensor, gold: Sequence[Sequence[int]], k: int = 1
) -> float:
    """Share of queries with a correct candidate among their ``k`` nearest (cosine similarity).

    Args:
        queries: (B, C) embeddings.
        candidates: (M, C) embeddings.
        gold: for each query, the indices of its correct candidates (one or more).
        k: how many of the nearest candidates count.
    """
    if len(gold) != queries.size(0):
        raise ValueError(f"len(gold)={len(gold)} != number of queries {queries.size(0)}")
    if not 1 <= k <= candidates.size(0):
        raise ValueError(f"k={k} must be in [1, {candidates.size(0)}]")
    scores = F.normalize(queries, dim=-1) @ F.normalize(candidates, dim=-1).T  # (B, M)
    top = scores.topk(k, dim=1).indices.tolist()  # (B, k)
    return sum(bool(set(t) & set(g)) for t, g in zip(top, gold, strict=True)) / len(gold)


class SimCSE(nn.Module):
    """Unsupervised SimCSE around a ``Bert`` encoder, with mean pooling.

    ``forward`` encodes the batch twice in training mode: dropout draws two different masks,
    so each sentence gets two slightly different embeddings, a positive pair; the other
    sentences of the batch are its negatives (``info_nce``). It returns ``(None, loss)`` so
    that ``llmbook_utils.train.train`` can drive it.

    Args:
        encoder: a ``Bert`` (its pretraining heads, if any, are not used).
        temperature: tau of ``info_nce`` (0.05 in the paper).
    """

    def __init__(self, encoder: Bert, temperature: float = 0.05) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        self.encoder = encoder
        self.temperature = temperature

    def embed(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Mean-pooled embeddings (B, C) of a padded batch (B, T), in the current mode."""
        hidden, _, _ = self.encoder.encode(input_ids, attention_mask=attention_mask)  # (B, T, C)
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[None, Tensor]:
        """The SimCSE loss of a batch of B sentences, (B, T) ids and mask."""
        both_ids = torch.cat([input_ids, input_ids])  # (2B, T): one pass, independent dropout
        both_mask = torch.cat([attention_mask, attention_mask])
        z = self.embed(both_ids, both_mask)  # (2B, C)
        z1, z2 = z.chunk(2)  # (B, C) each: two dropout views of the same sentences
        return None, info_nce(z1, z2, self.temperature)
