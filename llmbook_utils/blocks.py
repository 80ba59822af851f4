"""The Transformer's building blocks: the feed-forward network, the encoder and decoder blocks.

Paper: Vaswani et al., "Attention Is All You Need", 2017, https://arxiv.org/abs/1706.03762
(section 3.1 and 3.3).

Each sub-layer (self-attention, cross-attention, feed-forward network) is wrapped in a residual
connection and a LayerNorm, either after the sum (post-norm, the paper) or before the sub-layer
(pre-norm, GPT-2 and most modern models). ``llmbook_utils.transformer`` assembles the blocks
into the encoder-decoder model and re-exports them.

Shape legend: B batch, T time (Ts source, Tt target), C channels (d_model), H heads,
D head size.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.attention import MultiHeadAttention

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")


class FeedForward(nn.Module):
    """Position-wise feed-forward network FFN(x) = act(x W1 + b1) W2 + b2.

    Args:
        d_model: input and output width C.
        d_ff: hidden width (4 * C in the paper, GPT and BERT).
        dropout: dropout on the hidden activations (as in ``torch.nn.TransformerEncoderLayer``).
        activation: ``"relu"`` (the paper), ``"gelu"`` (BERT) or ``"gelu_tanh"`` (GPT-2's tanh
            approximation of GELU).
        bias: whether the two linear layers have a bias.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not one of {ACTIVATIONS}")
        if d_model < 1 or d_ff < 1:
            raise ValueError(f"d_model={d_model} and d_ff={d_ff} must both be >= 1")
        self.activation = activation
        self.linear1 = nn.Linear(d_model, d_ff, bias=bias)
        self.linear2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, C) -> (B, T, C)."""
        h = self.linear1(x)  # (B, T, C) -> (B, T, d_ff)
        if self.activation == "relu":
            h = F.relu(h)
        else:  # one fused kernel, not a chain of elementwise ops
            h = F.gelu(h, approximate="tanh" if self.activation == "gelu_tanh" else "none")
        return self.linear2(self.dropout(h))  # (B, T, d_ff) -> (B, T, C)


class EncoderBlock(nn.Module):
    """Self-attention and a feed-forward network, each with a residual connection and LayerNorm.

    Post-norm (paper): x = LN(x + Dropout(SelfAttn(x))); x = LN(x + Dropout(FFN(x))).
    Pre-norm: x = x + Dropout(SelfAttn(LN(x))); x = x + Dropout(FFN(LN(x))).
    Parameter layout and results match ``torch.nn.TransformerEncoderLayer(batch_first=True)``.

    Args:
        d_model: width C.
        n_heads: attention heads H.
        d_ff: feed-forward hidden width.
        dropout: dropout on attention weights, residual branches and (see ``ff_dropout``) the
            feed-forward hidden layer.
        activation: feed-forward activation (see ``FeedForward``).
        norm_first: pre-norm (True) or post-norm (False, the paper).
        layer_norm_eps: LayerNorm epsilon.
        bias: biases in the linear layers and LayerNorms.
        ff_dropout: dropout inside the feed-forward network; None = ``dropout`` (PyTorch's
            choice); BERT uses 0.0.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
        ff_dropout: float | None = None,
    ) -> None:
        super().__init__()
        ff_dropout = dropout if ff_dropout is None else ff_dropout
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, bias=bias)
        self.ff = FeedForward(d_model, d_ff, ff_dropout, activation, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        return_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Args: x (B, T, C); mask bool broadcastable to (B, H, T, T), True = may attend.

        Returns ``(x, weights)``: (B, T, C) and the self-attention weights (B, H, T, T) or None.
        """
        if self.norm_first:
            attn, weights = self.self_attn(
                self.norm1(x), mask=mask, return_weights=return_weights, is_causal=is_causal
            )
            x = x + self.dropout(attn)
            x = x + self.dropout(self.ff(self.norm2(x)))
        else:
            attn, weights = self.self_attn(
                x, mask=mask, return_weights=return_weights, is_causal=is_causal
            )
            x = self.norm1(x + self.dropout(attn))
            x = self.norm2(x + self.dropout(self.ff(x)))
        return x, weights


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention to the encoder output, then a feed-forward network.

    Each of the three sub-layers has a residual connection and a LayerNorm (post- or pre-norm,
    as in ``EncoderBlock``). Parameter layout and results match
    ``torch.nn.TransformerDecoderLayer(batch_first=True)`` with a causal target mask.

    Args: as ``EncoderBlock`` (``ff_dropout`` is always ``dropout`` here).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, bias=bias)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout, bias=bias)
        self.ff = FeedForward(d_model, d_ff, dropout, activation, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        self_mask: Tensor | None = None,
        return_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Decode one layer.

        Args:
            x: target representations (B, Tt, C).
            memory: encoder output (B, Ts, C).
            memory_mask: bool, broadcastable to (B, H, Tt, Ts); usually ``padding_mask(src_mask)``.
            self_mask: extra bool mask for self-attention, combined with the causal mask.
            return_weights: also return the cross-attention weights.

        Returns:
            ``(x, cross_weights)``: (B, Tt, C) and (B, H, Tt, Ts) or None.
        """
        if memory.dim() != 3 or memory.shape[0] != x.shape[0] or memory.shape[2] != x.shape[2]:
            raise ValueError(
                f"memory shape {tuple(memory.shape)} does not fit x shape {tuple(x.shape)}"
            )
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.dropout(self.self_attn(h, mask=self_mask, is_causal=True)[0])
            cross, weights = self.cross_attn(
                self.norm2(x), memory, mask=memory_mask, return_weights=return_weights
            )
            x = x + self.dropout(cross)
            x = x + self.dropout(self.ff(self.norm3(x)))
        else:
            x = self.norm1(x + self.dropout(self.self_attn(x, mask=self_mask, is_causal=True)[0]))
            cross, weights = self.cross_attn(
                x, memory, mask=memory_mask, return_weights=return_weights
            )
            x = self.norm2(x + self.dropout(cross))
            x = self.norm3(x + self.dropout(self.ff(x)))
        return x, weights
