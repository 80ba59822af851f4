"""Scaled dot-product attention, masks and multi-head attention.

Paper: Vaswani et al., "Attention Is All You Need", 2017, https://arxiv.org/abs/1706.03762
(section 3.2).

Shape legend: B batch, T time (Tq queries, Tk keys), C channels (d_model), H heads,
D head size (C // H).

Masks are boolean and True means "may attend", as in ``torch.nn.functional.
scaled_dot_product_attention``; they broadcast to (B, H, Tq, Tk).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_mask(mask: Tensor, scores_shape: tuple[int, ...]) -> None:
    """Raise ValueError unless ``mask`` is boolean and broadcasts to ``scores_shape``."""
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = may attend), got dtype={mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(scores_shape):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the attention scores "
            f"of shape {tuple(scores_shape)} (B, H, Tq, Tk)"
        )


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(D)) V, written out step by step.

    This is the teaching version: it materialises the (Tq, Tk) weight matrix so that it can be
    returned and plotted. ``MultiHeadAttention`` calls PyTorch's fused kernel instead whenever
    the weights are not needed; both give the same output.

    Args:
        q: queries, shape (..., Tq, D), e.g. (B, H, Tq, D).
        k: keys, shape (..., Tk, D).
        v: values, shape (..., Tk, Dv).
        mask: optional bool tensor broadcastable to (..., Tq, Tk); True = may attend. A query
            row with no allowed key gets all-zero weights (and a zero output), as in PyTorch.
        dropout_p: dropout probability applied to the weights (use 0.0 in evaluation).

    Returns:
        ``(out, weights)``: out of shape (..., Tq, Dv) and weights of shape (..., Tq, Tk)
        whose rows sum to 1.

    Raises:
        ValueError: if the shapes do not fit together or the mask does not broadcast.
    """
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            f"q, k, v need at least 2 dims (..., T, D), got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.size(-1) != k.size(-1):
        raise ValueError(f"q head size {q.size(-1)} != k head size {k.size(-1)}")
    if k.size(-2) != v.size(-2):
        raise ValueError(f"k has Tk={k.size(-2)} keys but v has {v.size(-2)} values")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p={dropout_p} must be in [0, 1)")

    # Dividing by sqrt(D) keeps the scores' variance near 1, so softmax does not saturate.
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., Tq, D) @ (..., D, Tk)
    if mask is not None:
        _check_mask(mask, tuple(scores.shape))
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk)
    if mask is not None:
        # A fully masked row is softmax(-inf, ..., -inf) = NaN; zero it as PyTorch's kernel does.
        weights = weights.masked_fill(~mask, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v  # (..., Tq, Tk) @ (..., Tk, Dv) -> (..., Tq, Dv)
    return out, weights


def causal_mask(T: int, num_keys: int | None = None, device: torch.device | None = None) -> Tensor:
    """Lower-triangular bool mask: query i may attend to keys 0..i.

    Args:
        T: number of queries (and keys, unless ``num_keys`` is given).
        num_keys: number of keys Tk >= T when the queries are the *last* T positions of a
            longer sequence (decoding with a KV cache); query i then sees keys 0..Tk - T + i.
        device: where to create the mask.

    Returns:
        Bool tensor of shape (T, Tk); True = may attend.
    """
    num_keys = T if num_keys is None else num_keys
    if T < 1 or num_keys < T:
        raise ValueError(f"need 1 <= T <= num_keys, got T={T}, num_keys={num_keys}")
    ones = torch.ones(T, num_keys, dtype=torch.bool, device=device)
    return torch.tril(ones, diagonal=num_keys - T)


def padding_mask(attention_mask: Tensor) -> Tensor:
    """Turn a (B, Tk) padding indicator into an attention mask.

    Args:
        attention_mask: (B, Tk) tensor, 1/True for real tokens and 0/False for padding (the
            Hugging Face convention).

    Returns:
        Bool tensor of shape (B, 1, 1, Tk) that broadcasts over heads and queries.
    """
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must have shape (B, Tk), got {tuple(attention_mask.shape)}"
        )
    return attention_mask.bool()[:, None, None, :]  # (B, Tk) -> (B, 1, 1, Tk)


class KVCache:
    """Keys and values of the tokens seen so far, for one attention layer.

    Incremental decoding feeds one new token per step; its query attends to the cached keys and
    values of all earlier tokens, so nothing is recomputed. The buffer is allocated once, with
    room for ``max_len`` positions.

    Args:
        max_len: the most positions the cache can hold (a GPT's context length).
    """

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self.keys: Tensor | None = None  # (B, H, max_len, D)
        self.values: Tensor | None = None  # (B, H, max_len, D)
        self.length = 0  # positions filled so far

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new positions' keys and values (B, H, T, D); return all so far."""
        T = k.size(2)
        if self.length + T > self.max_len:
            raise ValueError(
                f"KV cache overflow: {self.length} cached + {T} new > max_len={self.max_len}"
            )
        if self.keys is None:
            B, H, _, D = k.shape
            self.keys = k.new_empty(B, H, self.max_len, D)
            self.values = v.new_empty(B, H, self.max_len, D)
        self.keys[:, :, self.length : self.length + T] = k
        self.values[:, :, self.length : self.length + T] = v
        self.length += T
        # Views, no copy: (B, H, max_len, D) -> (B, H, length, D)
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def reset(self) -> None:
        """Forget every cached position (the buffers are kept)."""
        self.length = 0

    def expanded(self, batch: int, extra: int) -> KVCache:
        """A new cache holding this one's positions for ``batch`` rows, with room for ``extra``
        more: a prompt run once (batch 1) and then continued by ``batch`` different texts.

        Raises:
            ValueError: if this cache is empty or holds more than one row.
        """
        if self.keys is None or self.length == 0 or self.keys.size(0) != 1:
            rows = None if self.keys is None else self.keys.size(0)
            raise ValueError(f"expanded needs a filled cache of one row, got {self.length} "
                             f"positions and {rows} rows")  # fmt: skip
        copy = KVCache(self.length + extra)
        copy.update(self.keys[:, :, : self.length].expand(batch, -1, -1, -1),
                    self.values[:, :, : self.length].expand(batch, -1, -1, -1))  # fmt: skip
        return copy


def head_size(d_model: int, n_heads: int, dropout: float = 0.0) -> int:
    """The head size D = d_model / n_heads, after checking the sizes and the dropout rate.

    Raises:
        ValueError: if ``n_heads`` does not divide ``d_model`` or dropout is not in [0, 1).
    """
    if d_model < 1 or n_heads < 1 or d_model % n_heads != 0:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout} must be in [0, 1)")
    return d_model // n_heads


class MultiHeadAttention(nn.Module):
    """Multi-head attention: H attention heads of size D = d_model / H, run in parallel.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_H) W_O with
    head_h = Attention(Q W_Q^h, K W_K^h, V W_V^h). The H projections of each kind are stored as
    one (C, C) ``nn.Linear``: ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``.

    Args:
        d_model: model width C.
        n_heads: number of heads H; must divide ``d_model``.
        dropout: dropout on the attention weights during training.
        bias: whether the four projections have a bias.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.d_model, self.n_heads, self.dropout = d_model, n_heads, dropout
        self.head_dim = head_size(d_model, n_heads, dropout)
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B,T,C)->(B,H,T,D)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
        return_weights: bool = False,
        is_causal: bool = False,
        kv_cache: KVCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value``.

        Self-attention: ``mha(x)``. Cross-attention: ``mha(x, memory)`` (value defaults to key).

        Args:
            query: (B, Tq, C).
            key: (B, Tk, C); defaults to ``query``.
            value: (B, Tk, C); defaults to ``key``.
            mask: optional bool mask broadcastable to (B, H, Tq, Tk); True = may attend.
            return_weights: also return the attention weights (uses the explicit path).
            is_causal: add a causal mask (query i sees keys up to its own position). With a KV
                cache the queries are the last Tq of the Tk positions.
            kv_cache: for incremental decoding; the new keys/values are appended to it and the
                queries attend to all cached positions.

        Returns:
            ``(out, weights)``: out (B, Tq, C); weights (B, H, Tq, Tk) or None.
        """
        key = query if key is None else key
        value = key if value is None else value
        if query.dim() != 3 or query.size(-1) != self.d_model:
            raise ValueError(f"query must be (B, T, {self.d_model}), got {tuple(query.shape)}")
        if key.dim() != 3 or key.shape[0] != query.shape[0] or key.size(-1) != self.d_model:
            raise ValueError(
                f"key must be (B={query.shape[0]}, Tk, {self.d_model}), got {tuple(key.shape)}"
            )
        if value.shape != key.shape:
            raise ValueError(f"value shape {tuple(value.shape)} != key shape {tuple(key.shape)}")
        B, Tq, C = query.shape

        # Always through the modules, in training as in evaluation, so that forward hooks and
        # wrappers that replace them (LoRA) see every call. GPT's CausalSelfAttention fuses the
        # three self-attention projections into one matrix instead.
        q = self._split_heads(self.q_proj(query))  # (B, Tq, C) -> (B, H, Tq, D)
        k = self._split_heads(self.k_proj(key))  # (B, Tk, C) -> (B, H, Tk, D)
        v = self._split_heads(self.v_proj(value))  # (B, Tk, C) -> (B, H, Tk, D)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (B, H, T_cached + Tk, D)
        Tk = k.size(2)
        if mask is not None:
            _check_mask(mask, (B, self.n_heads, Tq, Tk))

        # The fused kernel's own is_causal aligns the mask top-left, which is only right when
        # Tq == Tk; one new query (Tq == 1) sees every key; otherwise build the mask ourselves.
        fused_causal = is_causal and Tq == Tk and mask is None and not return_weights
        if is_causal and not fused_causal and Tq > 1:
            causal = causal_mask(Tq, Tk, device=query.device)  # (Tq, Tk)
            mask = causal if mask is None else mask & causal

        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if return_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=fused_causal
            )
        out = out.transpose(1, 2).reshape(B, Tq, C)  # (B, H, Tq, D) -> (B, Tq, C)
        return self.out_proj(out), weights
