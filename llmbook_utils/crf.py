"""A linear-chain conditional random field (CRF) for sequence labelling, from scratch.

Paper: Lafferty, McCallum and Pereira, "Conditional Random Fields: Probabilistic Models for
Segmenting and Labeling Sequence Data", ICML 2001; on top of a BiLSTM as in Lample et al.,
"Neural Architectures for Named Entity Recognition", NAACL 2016,
https://arxiv.org/abs/1603.01360.

A tag sequence ``y`` of a sentence with emission scores ``E`` (one score per position and tag,
from a neural network) scores

    s(y) = start[y_1] + sum_t E[t, y_t] + sum_{t>1} A[y_{t-1}, y_t] + end[y_T],

and ``p(y | x) = exp s(y) / Z`` with ``Z = sum_y' exp s(y')`` over all K^T tag sequences. The
forward algorithm computes ``log Z`` in O(T K^2) by dynamic programming (``log_partition``); the
Viterbi algorithm finds ``argmax_y s(y)`` the same way with max in place of logsumexp
(``viterbi_decode``). Training minimises the negative log-likelihood ``log Z - s(y)``.

Shape legend: B batch, T time (positions), K tags.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

FORBIDDEN = -1e4  # score of a transition that ``allowed`` rules out: exp(-1e4) is 0 in float32


def _check(emissions: Tensor, mask: Tensor | None, num_tags: int) -> Tensor:
    """Validate shapes; return a boolean mask (B, T) whose first column is all True."""
    if emissions.dim() != 3 or emissions.shape[-1] != num_tags:
        raise ValueError(
            f"emissions of shape {tuple(emissions.shape)}: expected (B, T, K={num_tags})"
        )
    batch, length, _ = emissions.shape
    if length == 0:
        raise ValueError("emissions have T=0 positions; a CRF needs at least one")
    if mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=emissions.device)
    if mask.shape != (batch, length):
        raise ValueError(f"mask of shape {tuple(mask.shape)}: expected (B, T)={(batch, length)}")
    mask = mask.bool()
    if not mask[:, 0].all():
        raise ValueError("mask[:, 0] must be True: every sequence needs at least one position")
    return mask


def sequence_score(
    emissions: Tensor, tags: Tensor, transitions: Tensor, start: Tensor, end: Tensor,
    mask: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """The unnormalised score ``s(y)`` of given tag sequences.

    Args:
        emissions: (B, T, K) per-position tag scores.
        tags: (B, T) tag indices (padding positions are ignored).
        transitions: (K, K) score of moving from tag i (row) to tag j (column).
        start, end: (K,) scores of the first and the last tag.
        mask: (B, T) True on real positions, a prefix of each row; None means all real.

    Returns:
        (B,) ``s(y)`` of each sequence.
    """
    mask = _check(emissions, mask, transitions.shape[0])
    maskf = mask.to(emissions.dtype)  # (B, T)
    emit = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
    score = start[tags[:, 0]] + (emit * maskf).sum(1)  # (B,)
    trans = transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
    score = score + (trans * maskf[:, 1:]).sum(1)
    last = mask.long().sum(1) - 1  # (B,) index of each sequence's last real position
    return score + end[tags.gather(1, last.unsqueeze(1)).squeeze(1)]


def log_partition(
    emissions: Tensor, transitions: Tensor, start: Tensor, end: Tensor,
    mask: Tensor | None = None,
) -> Tensor:  # fmt: skip
    """``log Z``: the log-sum-exp of ``s(y)`` over all tag sequences (the forward algorithm).

    ``alpha_t[j] = log sum_{y_1..y_t = j} exp s(y_1..y_t)`` obeys
    ``alpha_1 = start + E_1`` and ``alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + A[i, j]) + E_t[j]``;
    then ``log Z = logsumexp_j(alpha_T[j] + end[j])``.

    Returns:
        (B,) ``log Z`` of each sequence.
    """
    mask = _check(emissions, mask, transitions.shape[0])
    alpha = start + emissions[:, 0]  # (B, K)
    for t in range(1, emissions.shape[1]):
        # (B, K, 1) + (K, K) -> (B, K, K): from tag i (dim 1) to tag j (dim 2)
        step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t : t + 1], step, alpha)  # padding keeps the last alpha
    return torch.logsumexp(alpha + end, dim=1)


def viterbi_decode(
    emissions: Tensor, transitions: Tensor, start: Tensor, end: Tensor,
    mask: Tensor | None = None,
) -> tuple[list[list[int]], Tensor]:  # fmt: skip
    """The highest-scoring tag sequence of each sentence (the Viterbi algorithm).

    ``delta_t[j] = max_i(delta_{t-1}[i] + A[i, j]) + E_t[j]``, remembering the best ``i`` of
    every ``(t, j)``; the best last tag maximises ``delta_T + end`` and the back-pointers give
    the rest.

    Returns:
        ``(paths, scores)``: one list of T_b tag indices per sentence (its real length) and
        (B,) their scores ``s(y*)``.
    """
    mask = _check(emissions, mask, transitions.shape[0])
    delta = start + emissions[:, 0]  # (B, K)
    pointers = []  # T-1 tensors (B, K): the best previous tag of each tag
    for t in range(1, emissions.shape[1]):
        best, arg = (delta.unsqueeze(2) + transitions).max(dim=1)  # (B, K), (B, K)
        keep = mask[:, t : t + 1]
        delta = torch.where(keep, best + emissions[:, t], delta)
        # on padding, point each tag to itself so the backtrace passes through unchanged
        identity = torch.arange(delta.shape[1], device=delta.device).expand_as(arg)
        pointers.append(torch.where(keep, arg, identity))
    scores, last = (delta + end).max(dim=1)  # (B,), (B,)
    lengths = mask.long().sum(1).tolist()
    tag = last
    path = [tag]
    for arg in reversed(pointers):
        tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)  # (B,)
        path.append(tag)
    full = torch.stack(path[::-1], dim=1).tolist()  # (B, T)
    # the identity pointers repeat a sequence's last real tag over its padding: cut at length
    return [row[:n] for row, n in zip(full, lengths, strict=True)], scores


def bio_allowed(labels: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Which transitions and first tags are legal in the BIO scheme.

    ``I-X`` may only follow ``B-X`` or ``I-X``, and may not start a sentence.

    Args:
        labels: tag names such as ``["O", "B-PER", "I-PER", ...]``.

    Returns:
        ``(allowed, allowed_start)``: (K, K) and (K,) boolean tensors.
    """
    num = len(labels)
    allowed = torch.ones(num, num, dtype=torch.bool)
    allowed_start = torch.ones(num, dtype=torch.bool)
    for j, label in enumerate(labels):
        if label.startswith("I-"):
            kind = label[2:]
            allowed_start[j] = False
            for i, prev in enumerate(labels):
                allowed[i, j] = prev in (f"B-{kind}", f"I-{kind}")
    return allowed, allowed_start


class LinearChainCRF(nn.Module):
    """Transition, start and end scores of a linear-chain CRF, learned with the tagger.

    Args:
        num_tags: K, the number of tags.
        allowed: optional (K, K) boolean tensor; False transitions get the score ``FORBIDDEN``
            (see ``bio_allowed``).
        allowed_start: optional (K,) boolean tensor for the first tag.
    """

    def __init__(
        self, num_tags: int, allowed: Tensor | None = None, allowed_start: Tensor | None = None
    ) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags={num_tags}: need at least one tag")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (K, K) from, to
        self.start = nn.Parameter(torch.zeros(num_tags))  # (K,)
        self.end = nn.Parameter(torch.zeros(num_tags))  # (K,)
        allowed = torch.ones(num_tags, num_tags, dtype=torch.bool) if allowed is None else allowed
        if allowed_start is None:
            allowed_start = torch.ones(num_tags, dtype=torch.bool)
        if allowed.shape != (num_tags, num_tags) or allowed_start.shape != (num_tags,):
            raise ValueError(
                f"allowed {tuple(allowed.shape)} / allowed_start {tuple(allowed_start.shape)}: "
                f"expected ({num_tags}, {num_tags}) and ({num_tags},)"
            )
        self.register_buffer("allowed", allowed.bool(), persistent=False)
        self.register_buffer("allowed_start", allowed_start.bool(), persistent=False)

    def _params(self) -> tuple[Tensor, Tensor, Tensor]:
        transitions = self.transitions.masked_fill(~self.allowed, FORBIDDEN)
        return transitions, self.start.masked_fill(~self.allowed_start, FORBIDDEN), self.end

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B,) ``log Z`` (see the module function ``log_partition``)."""
        return log_partition(emissions, *self._params(), mask=mask)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B,) ``s(y)`` of the given tags."""
        return sequence_score(emissions, tags, *self._params(), mask=mask)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Mean over the batch of ``-log p(y | x) = log Z - s(y)``; a scalar."""
        return (self.log_partition(emissions, mask) - self.score(emissions, tags, mask)).mean()

    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> list[list[int]]:
        """The Viterbi tag sequence of each sentence, cut to its real length."""
        return viterbi_decode(emissions, *self._params(), mask=mask)[0]
