"""A GPT: a decoder-only Transformer language model with the GPT-2 architecture.

Papers: Radford et al., "Improving Language Understanding by Generative Pre-Training", 2018, and
"Language Models are Unsupervised Multitask Learners" (GPT-2), 2019,
https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf

Token and learned position embeddings, a stack of pre-norm blocks (causal self-attention and a
GELU feed-forward network, each in a residual branch), a final LayerNorm and a language-model
head that shares its matrix with the token embedding. As in GPT-2, the attention computes the
queries, keys and values with one fused projection, ``CausalSelfAttention.qkv`` (GPT-2's
``c_attn``). Weights map one-to-one to Hugging Face's ``GPT2LMHeadModel`` (see
``llmbook_utils.hf``); ``activation="gelu_tanh"`` gives GPT-2's exact numbers.

Shape legend: B batch, T time, C channels (d_model), H heads, D head size, V vocabulary,
L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from llmbook_utils.attention import (
    KVCache,
    causal_mask,
    head_size,
    scaled_dot_product_attention,
)
from llmbook_utils.blocks import FeedForward
from llmbook_utils.collate import token_cross_entropy
from llmbook_utils.decoding import SamplingMixin, check_token_ids
from llmbook_utils.positional import LearnedPositionalEmbedding

# Exact GELU x * Phi(x) (one fast kernel; the default for models trained here) or GPT-2's tanh
# approximation (needed for the exact numbers of GPT-2's released weights).
GPT_ACTIVATIONS = ("gelu", "gelu_tanh")


@dataclass
class GPTConfig:
    """Hyperparameters of a GPT."""

    vocab_size: int  # V, number of token ids
    context_length: int  # the longest sequence the model reads (position table size)
    d_model: int  # width C
    n_layers: int  # number of blocks L
    n_heads: int  # attention heads H; must divide d_model
    dropout: float = 0.0  # on embeddings, attention weights and residual branches
    bias: bool = True  # biases in linear layers and LayerNorms (GPT-2 has them)
    tie_weights: bool = True  # lm_head shares the token-embedding matrix (GPT-2 does)
    d_ff: int | None = None  # feed-forward hidden width; None = 4 * d_model
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon (GPT-2: 1e-5)
    activation: str = "gelu"  # feed-forward nonlinearity: "gelu" (exact) or "gelu_tanh" (GPT-2)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if self.d_ff is not None and self.d_ff < 1:
            raise ValueError(f"d_ff={self.d_ff} must be >= 1 (or None for 4 * d_model)")
        if self.activation not in GPT_ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r} is not one of {GPT_ACTIVATIONS}")

    @property
    def ff_width(self) -> int:
        """The feed-forward hidden width actually used."""
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @classmethod
    def from_name(cls, name: str, **overrides: object) -> GPTConfig:
        """A named preset, optionally with some fields changed (``vocab_size=...``).

        - ``"tiny"``, ``"mini"``, ``"small"``: models for a CPU, with a byte-sized vocabulary of
          256 that a chapter replaces by its tokenizer's ``vocab_size``:
          tiny = 64 wide, 2 layers, 4 heads, context 64; mini = 128 wide, 4 layers, 4 heads,
          context 128; small = 384 wide, 6 layers, 6 heads, context 256; exact GELU.
        - ``"gpt2"`` (124,439,808 parameters), ``"gpt2-medium"``, ``"gpt2-large"``, ``"gpt2-xl"``:
          OpenAI's GPT-2 sizes, vocabulary 50257, context 1024, GELU's tanh approximation.
        """
        gpt2 = {"vocab_size": 50257, "context_length": 1024, "activation": "gelu_tanh"}
        presets = {
            "tiny": cls(256, 64, d_model=64, n_layers=2, n_heads=4),
            "mini": cls(256, 128, d_model=128, n_layers=4, n_heads=4),
            "small": cls(256, 256, d_model=384, n_layers=6, n_heads=6),
            "gpt2": cls(**gpt2, d_model=768, n_layers=12, n_heads=12),
            "gpt2-medium": cls(**gpt2, d_model=1024, n_layers=24, n_heads=16),
            "gpt2-large": cls(**gpt2, d_model=1280, n_layers=36, n_heads=20),
            "gpt2-xl": cls(**gpt2, d_model=1600, n_layers=48, n_heads=25),
        }
        if name not in presets:
            raise ValueError(f"unknown GPT preset {name!r}; known: {sorted(presets)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {unknown}; known: {sorted(known)}")
        return replace(presets[name], **overrides)


class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention with GPT-2's fused query/key/value projection.

    ``qkv`` is one ``nn.Linear(C, 3C)``: its output holds the queries, keys and values side by
    side, [q | k | v], exactly as GPT-2's ``c_attn``. It is the same arithmetic as three (C, C)
    projections (chapter 4's ``MultiHeadAttention``) in one larger matmul, and it is called as a
    module in training and in evaluation alike, so forward hooks and LoRA wrappers on ``qkv``
    and ``out_proj`` always apply.

    Args:
        d_model: model width C.
        n_heads: number of heads H; must divide ``d_model``.
        dropout: dropout on the attention weights during training.
        bias: whether the two projections have a bias.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.d_model, self.n_heads, self.dropout = d_model, n_heads, dropout
        self.head_dim = head_size(d_model, n_heads, dropout)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self, x: Tensor, kv_cache: KVCache | None = None, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Each position attends to itself and every earlier one.

        Args:
            x: (B, T, C).
            kv_cache: for incremental decoding; the new keys and values are appended to it and
                the T new queries, the last T positions, attend to every cached one.
            return_weights: also return the attention weights (the explicit, slower path).

        Returns:
            ``(out, weights)``: out (B, T, C); weights (B, H, T, Tk) or None, where Tk is T
            plus the positions already cached.
        """
        if x.dim() != 3 or x.size(-1) != self.d_model:
            raise ValueError(f"x must be (B, T, {self.d_model}), got {tuple(x.shape)}")
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) -> (B, T, 3C) -> 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        # -> 3 x (B, H, T, D), views: no copy
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (B, H, Tk, D), Tk = T_cached + T
        Tk = k.size(2)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if return_weights:
            mask = causal_mask(T, Tk, device=x.device)  # (T, Tk)
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        elif Tk == T or T == 1:
            # The fused kernel's is_causal aligns the mask top-left, right when T == Tk; a
            # single new query sees every cached key, so it needs no mask at all.
            out = F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout_p, is_causal=Tk == T and T > 1
            )
        else:  # several new queries after a cached prefix: they are the last T of Tk
            mask = causal_mask(T, Tk, device=x.device)  # (T, Tk)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, C)
        return self.out_proj(out), weights


class GPTBlock(nn.Module):
    """x = x + Dropout(CausalSelfAttn(LN(x))); x = x + Dropout(FFN(LN(x))) (pre-norm)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = config
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.attn = CausalSelfAttention(c.d_model, c.n_heads, dropout=c.dropout, bias=c.bias)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        # GPT-2 has no dropout inside the MLP, only on its output (self.dropout below).
        self.ff = FeedForward(c.d_model, c.ff_width, 0.0, c.activation, bias=c.bias)
        self.dropout = nn.Dropout(c.dropout)

    def forward(
        self, x: Tensor, kv_cache: KVCache | None = None, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """(B, T, C) -> ((B, T, C), attention weights (B, H, T, T_total) or None)."""
        attn, weights = self.attn(self.norm1(x), kv_cache=kv_cache, return_weights=return_weights)
        x = x + self.dropout(attn)
        x = x + self.dropout(self.ff(self.norm2(x)))
        return x, weights


class GPT(SamplingMixin, nn.Module):
    """GPT-2-style decoder-only language model.

    Initialised as GPT-2: weights N(0, 0.02^2), biases 0, and the projections that write into the
    residual stream (``attn.out_proj``, ``ff.linear2``) scaled by 1 / sqrt(2 L), so the stream's
    variance does not grow with depth.

    Args:
        config: the hyperparameters.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = LearnedPositionalEmbedding(c.context_length, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(GPTBlock(c) for _ in range(c.n_layers))
        self.norm_f = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)

        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * c.n_layers)
        for block in self.blocks:
            nn.init.normal_(block.attn.out_proj.weight, std=residual_std)
            nn.init.normal_(block.ff.linear2.weight, std=residual_std)
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Number of distinct parameters (the tied embedding/lm_head matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx: Tensor) -> None:
        check_token_ids(idx, self.config.context_length)

    def _hidden(
        self,
        idx: Tensor,
        kv_caches: list[KVCache] | None = None,
        return_weights: bool = False,
        checkpoint: bool = False,
    ) -> tuple[Tensor, list[Tensor]]:
        """Final hidden states (B, T, C) and, if asked, each layer's attention weights.

        With ``checkpoint`` (and gradients on) every block keeps only its input for the
        backward pass and runs again there (``torch.utils.checkpoint``, non-reentrant; the
        dropout masks are the same, as it restores the random-number state): activation
        checkpointing, chapter 13.
        """
        offset = kv_caches[0].length if kv_caches is not None else 0  # tokens already cached
        x = self.tok_emb(idx) + self.pos_emb(idx.size(1), offset)  # (B, T, C) + (T, C)
        x = self.dropout(x)
        maps = []
        for i, block in enumerate(self.blocks):
            cache = kv_caches[i] if kv_caches is not None else None
            if checkpoint and cache is None and not return_weights and torch.is_grad_enabled():
                x, weights = torch_checkpoint(block, x, use_reentrant=False)
            else:
                x, weights = block(x, kv_cache=cache, return_weights=return_weights)
            if return_weights:
                maps.append(weights)
        return self.norm_f(x), maps

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, checkpoint: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Next-token logits for every position, and the loss if targets are given.

        Args:
            idx: token ids (B, T), T <= context_length.
            targets: (B, T), the token that follows each position; ``IGNORE_INDEX`` (-100)
                marks positions to ignore.
            checkpoint: recompute each block's activations in the backward pass instead of
                storing them (same results, less memory, about a third more compute).

        Returns:
            ``(logits, loss)``: (B, T, V) and the mean cross-entropy (None without targets).
        """
        self._check_idx(idx)
        x, _ = self._hidden(idx, checkpoint=checkpoint)
        logits = self.lm_head(x)  # (B, T, C) -> (B, T, V)
        loss = None if targets is None else token_cross_entropy(logits, targets)
        return logits, loss

    def _last_logits(self, idx: Tensor, kv_caches: list[KVCache] | None) -> Tensor:
        x, _ = self._hidden(idx, kv_caches)
        return self.lm_head(x[:, -1])  # only the last position: (B, C) -> (B, V)

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> Tensor:
        """Attention weights of every layer and head (evaluation mode, no gradient).

        Args:
            idx: token ids (B, T).

        Returns:
            (B, L, H, T, T); row t shows how much position t attends to each earlier position.
        """
        self._check_idx(idx)
        was_training = self.training
        self.eval()
        _, maps = self._hidden(idx, return_weights=True)
        self.train(was_training)
        return torch.stack(maps, dim=1)  # L x (B, H, T, T) -> (B, L, H, T, T)
