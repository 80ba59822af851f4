"""Positional information for attention, which on its own ignores word order.

- ``sinusoidal_encoding``: the fixed sines and cosines of Vaswani et al., "Attention Is All You
  Need", 2017 (section 3.5), https://arxiv.org/abs/1706.03762
- ``LearnedPositionalEmbedding``: one trained vector per position (BERT, GPT-2).
- ``RotaryEmbedding``: rotary position embedding (RoPE) of Su et al., "RoFormer", 2021,
  https://arxiv.org/abs/2104.09864, which rotates queries and keys so that their dot product
  depends only on the distance between the two positions.

Shape legend: B batch, T time, C channels (d_model), H heads, D head size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_encoding(max_len: int, d_model: int) -> Tensor:
    """The sinusoidal positional encoding of the original Transformer.

    PE[pos, 2i] = sin(pos / 10000^(2i / d_model)) and PE[pos, 2i + 1] = cos(pos / 10000^(2i /
    d_model)): each pair of channels is a sine/cosine of one frequency, the frequencies falling
    geometrically from 1 to 1/10000 across the channels.

    Args:
        max_len: number of positions.
        d_model: number of channels C (an odd C drops the last cosine).

    Returns:
        Float tensor of shape (max_len, d_model).
    """
    if max_len < 1 or d_model < 1:
        raise ValueError(f"max_len={max_len} and d_model={d_model} must both be >= 1")
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (T, 1)
    # 1 / 10000^(2i / d_model), computed as exp(-2i * ln(10000) / d_model); 2i = 0, 2, 4, ...
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )  # (ceil(C / 2),)
    angles = position * inv_freq  # (T, 1) * (C/2,) -> (T, C/2)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe


class LearnedPositionalEmbedding(nn.Module):
    """A trained vector for each position 0..max_len-1, added to the token embeddings.

    Args:
        max_len: the most positions (the context length).
        d_model: number of channels C.

    The table is ``self.weight`` of shape (max_len, C), initialised N(0, 0.02^2) as in GPT-2
    and BERT.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        if max_len < 1 or d_model < 1:
            raise ValueError(f"max_len={max_len} and d_model={d_model} must both be >= 1")
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, seq_len: int, offset: int = 0) -> Tensor:
        """Embeddings of positions ``offset .. offset + seq_len - 1``.

        Args:
            seq_len: number of positions T.
            offset: first position (tokens already in a KV cache).

        Returns:
            Tensor of shape (T, C); it broadcasts when added to (B, T, C) token embeddings.
        """
        if seq_len < 1 or offset < 0 or offset + seq_len > self.max_len:
            raise ValueError(
                f"positions {offset}..{offset + seq_len - 1} do not fit max_len={self.max_len}"
            )
        return self.weight[offset : offset + seq_len]  # a view of rows, (T, C)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE).

    Channels are taken in pairs (x_{2i}, x_{2i+1}), as in the paper; at position m the pair is
    rotated by the angle m * theta_i with theta_i = base^(-2i / D). A rotation keeps the vector's
    norm, and rotating q by m * theta and k by n * theta makes q . k depend on m - n only.

    Args:
        head_dim: size D of each head's query/key vectors (even).
        max_len: the most positions.
        base: the frequency base (10000 in the paper).
    """

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim < 2 or head_dim % 2 != 0:
            raise ValueError(f"head_dim={head_dim} must be even and >= 2")
        if max_len < 1 or base <= 1.0:
            raise ValueError(f"need max_len >= 1 and base > 1, got max_len={max_len}, base={base}")
        self.head_dim = head_dim
        self.max_len = max_len
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq  # (T, D/2)
        # Recomputed from the arguments, so not saved in the state dict.
        self.register_buffer("cos", torch.cos(angles), persistent=False)
        self.register_buffer("sin", torch.sin(angles), persistent=False)

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate queries or keys of shape (..., T, D) sitting at positions offset..offset+T-1."""
        T = x.shape[-2]
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"last dim {x.shape[-1]} != head_dim={self.head_dim}")
        if offset < 0 or offset + T > self.max_len:
            raise ValueError(f"positions {offset}..{offset + T - 1} exceed max_len={self.max_len}")
        cos = self.cos[offset : offset + T].to(x.dtype)  # (T, D/2)
        sin = self.sin[offset : offset + T].to(x.dtype)
        pairs = x.unflatten(-1, (self.head_dim // 2, 2))  # (..., T, D) -> (..., T, D/2, 2)
        x_even, x_odd = pairs[..., 0], pairs[..., 1]  # each (..., T, D/2)
        rotated = torch.stack(
            (x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1
        )  # (..., T, D/2, 2)
        return rotated.flatten(-2)  # (..., T, D/2, 2) -> (..., T, D)

    def forward(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        """Rotate queries and keys, both (B, H, T, D), at positions offset..offset+T-1."""
        return self.rotate(q, offset), self.rotate(k, offset)
