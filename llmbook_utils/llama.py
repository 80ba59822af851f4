"""A Llama-style decoder: RMSNorm, rotary positions, SwiGLU and grouped-query attention.

Papers: Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023,
https://arxiv.org/abs/2302.13971; RMSNorm: Zhang and Sennrich, 2019,
https://arxiv.org/abs/1910.07467; SwiGLU: Shazeer, "GLU Variants Improve Transformer", 2020,
https://arxiv.org/abs/2002.05202; rotary embeddings: Su et al., 2021,
https://arxiv.org/abs/2104.09864; grouped-query attention: Ainslie et al., 2023,
https://arxiv.org/abs/2305.13245.

What changed since GPT-2 (``llmbook_utils.gpt``): RMSNorm instead of LayerNorm (no mean, no
bias), rotary embeddings applied to queries and keys instead of a learned position table, a
gated feed-forward network (SwiGLU) instead of GELU, fewer key/value heads than query heads
(grouped-query attention, which shrinks the KV cache) and no biases anywhere. SmolLM2-135M
(``LlamaConfig.from_name("smollm2-135m")``) has exactly this architecture; its weights load with
``llama_from_hf`` below (re-exported by ``llmbook_utils.hf``).

Shape legend: B batch, T time, C channels (d_model), H query heads, G key/value heads,
D head size, V vocabulary, L layers, F feed-forward width.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.attention import KVCache, causal_mask, scaled_dot_product_attention
from llmbook_utils.collate import token_cross_entropy
from llmbook_utils.decoding import SamplingMixin, check_token_ids
from llmbook_utils.positional import RotaryEmbedding


@dataclass
class LlamaConfig:
    """Hyperparameters of a Llama-style decoder."""

    vocab_size: int  # V, number of token ids
    context_length: int  # the longest sequence the model reads (rotary table size)
    d_model: int  # width C
    n_layers: int  # number of blocks L
    n_heads: int  # query heads H; must divide d_model
    n_kv_heads: int  # key/value heads G; must divide n_heads (G = H: ordinary attention)
    d_ff: int  # SwiGLU hidden width F
    rope_base: float = 10000.0  # rotary frequency base (SmolLM2: 100000)
    norm_eps: float = 1e-5  # RMSNorm epsilon
    tie_weights: bool = True  # lm_head shares the token-embedding matrix (SmolLM2 does)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"n_kv_heads={self.n_kv_heads} must be >= 1 and divide n_heads={self.n_heads}"
            )
        if (self.d_model // self.n_heads) % 2 != 0:
            raise ValueError(
                f"head size d_model / n_heads = {self.d_model // self.n_heads} must be even "
                "(rotary embeddings rotate pairs of channels)"
            )
        if self.rope_base <= 1.0 or self.norm_eps <= 0.0:
            raise ValueError(f"need rope_base > 1 and norm_eps > 0, got {self.rope_base}, "
                             f"{self.norm_eps}")  # fmt: skip

    @property
    def head_dim(self) -> int:
        """Head size D = d_model / n_heads."""
        return self.d_model // self.n_heads

    @classmethod
    def from_name(cls, name: str, **overrides: object) -> LlamaConfig:
        """A named preset, optionally with some fields changed.

        - ``"tiny"``: 64 wide, 2 layers, 4 query and 2 key/value heads, F 160, vocabulary 256,
          context 128, for tests and exercises.
        - ``"smollm2-135m"``: SmolLM2-135M (30 layers, 576 wide, 9 query and 3 key/value
          heads, F 1536, vocabulary 49,152, context 8192, rotary base 100,000, tied
          embeddings): 134,515,008 parameters.
        - ``"llama2-7b"``: Llama 2 7B (32 layers, 4096 wide, 32 heads, F 11008, vocabulary
          32,000, context 4096, untied): 6,738,415,616 parameters. Build it on the ``meta``
          device to count without allocating.
        """
        presets = {
            "tiny": cls(256, 128, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=160),
            "smollm2-135m": cls(
                49152,
                8192,
                d_model=576,
                n_layers=30,
                n_heads=9,
                n_kv_heads=3,
                d_ff=1536,
                rope_base=100000.0,
            ),  # fmt: skip
            "llama2-7b": cls(
                32000,
                4096,
                d_model=4096,
                n_layers=32,
                n_heads=32,
                n_kv_heads=32,
                d_ff=11008,
                tie_weights=False,
            ),  # fmt: skip
        }
        if name not in presets:
            raise ValueError(f"unknown Llama preset {name!r}; known: {sorted(presets)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown LlamaConfig fields {unknown}; known: {sorted(known)}")
        return replace(presets[name], **overrides)


class RMSNorm(nn.Module):
    """RMSNorm(x) = g * x / sqrt(mean(x^2) + eps): LayerNorm without centring and bias.

    Computed in float32 whatever the input's dtype, as in Llama's reference code.

    Args:
        dim: size C of the last dimension.
        eps: added to the mean square.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., C)."""
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class SwiGLU(nn.Module):
    """The gated feed-forward network: down(SiLU(gate(x)) * up(x)), without biases.

    Three matrices instead of two; Llama takes F about 8/3 C so the parameter count matches a
    4C GELU network.

    Args:
        d_model: width C.
        d_ff: hidden width F.
    """

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=False)
        self.up_proj = nn.Linear(d_model, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, C) -> (B, T, C)."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # via (B, T, F)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with H query heads sharing G <= H key/value heads, and RoPE.

    Query head h reads key/value head h // (H / G). Only the G key/value heads are computed and
    cached, so the KV cache is H / G times smaller than with ordinary multi-head attention. The
    projections ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` are modules called in
    training and evaluation alike, so hooks and LoRA wrappers always apply.

    Args:
        d_model: width C.
        n_heads: query heads H.
        n_kv_heads: key/value heads G; must divide H.
        context_length: the most positions (rotary table size).
        rope_base: rotary frequency base.
    """

    def __init__(
        self, d_model: int, n_heads: int, n_kv_heads: int, context_length: int, rope_base: float
    ) -> None:
        super().__init__()
        if d_model % n_heads != 0 or n_heads % n_kv_heads != 0:
            raise ValueError(f"need n_kv_heads | n_heads | d_model, got {n_kv_heads}, "
                             f"{n_heads}, {d_model}")  # fmt: skip
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        kv_width = n_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, kv_width, bias=False)
        self.v_proj = nn.Linear(d_model, kv_width, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.rope = RotaryEmbedding(self.head_dim, context_length, base=rope_base)

    def forward(
        self, x: Tensor, kv_cache: KVCache | None = None, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Each position attends to itself and every earlier one.

        Args:
            x: (B, T, C).
            kv_cache: for incremental decoding; holds G heads. The T new positions start at
                ``kv_cache.length``, which sets their rotary angles.
            return_weights: also return the attention weights (explicit, slower path).

        Returns:
            ``(out, weights)``: out (B, T, C); weights (B, H, T, Tk) or None.
        """
        B, T, C = x.shape
        offset = kv_cache.length if kv_cache is not None else 0
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        # -> q (B, H, T, D); k, v (B, G, T, D)
        q, k = self.rope(q, k, offset)  # rotate by the absolute positions offset..offset+T-1
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (B, G, Tk, D), Tk = offset + T
        Tk = k.size(2)
        repeat = self.n_heads // self.n_kv_heads
        k = k.repeat_interleave(repeat, dim=1)  # (B, G, Tk, D) -> (B, H, Tk, D)
        v = v.repeat_interleave(repeat, dim=1)
        weights = None
        if return_weights:
            out, weights = scaled_dot_product_attention(q, k, v, causal_mask(T, Tk, x.device))
        elif Tk == T or T == 1:  # top-left causal mask is right; one new query sees all keys
            out = F.scaled_dot_product_attention(q, k, v, is_causal=Tk == T and T > 1)
        else:  # several new queries after a cached prefix: they are the last T of Tk
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T, Tk, x.device))
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, C)
        return self.out_proj(out), weights


class LlamaBlock(nn.Module):
    """x = x + Attn(RMSNorm(x)); x = x + SwiGLU(RMSNorm(x)) (pre-norm, no dropout)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        c = config
        self.norm1 = RMSNorm(c.d_model, c.norm_eps)
        self.attn = GroupedQueryAttention(
            c.d_model, c.n_heads, c.n_kv_heads, c.context_length, c.rope_base
        )
        self.norm2 = RMSNorm(c.d_model, c.norm_eps)
        self.ff = SwiGLU(c.d_model, c.d_ff)

    def forward(
        self, x: Tensor, kv_cache: KVCache | None = None, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """(B, T, C) -> ((B, T, C), attention weights or None)."""
        attn, weights = self.attn(self.norm1(x), kv_cache=kv_cache, return_weights=return_weights)
        x = x + attn
        return x + self.ff(self.norm2(x)), weights


class Llama(SamplingMixin, nn.Module):
    """A Llama-architecture decoder-only language model.

    Initialised with N(0, 0.02^2) weights and unit RMSNorm gains (as ``transformers`` does);
    pretrained weights come from ``llama_from_hf``.

    Args:
        config: the hyperparameters.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.blocks = nn.ModuleList(LlamaBlock(c) for _ in range(c.n_layers))
        self.norm_f = RMSNorm(c.d_model, c.norm_eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(self._init_weights)
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def num_parameters(self) -> int:
        """Number of distinct parameters (a tied embedding/lm_head matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx: Tensor) -> None:
        check_token_ids(idx, self.config.context_length)

    def _hidden(self, idx: Tensor, kv_caches: list[KVCache] | None = None) -> Tensor:
        """Final hidden states (B, T, C)."""
        x = self.tok_emb(idx)  # (B, T, C); positions enter through the rotary angles
        for i, block in enumerate(self.blocks):
            x, _ = block(x, kv_cache=kv_caches[i] if kv_caches is not None else None)
        return self.norm_f(x)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Next-token logits for every position, and the loss if targets are given.

        Args:
            idx: token ids (B, T), T <= context_length.
            targets: (B, T), the token that follows each position; ``IGNORE_INDEX`` (-100)
                marks positions to ignore.

        Returns:
            ``(logits, loss)``: (B, T, V) and the mean cross-entropy (None without targets).
        """
        self._check_idx(idx)
        logits = self.lm_head(self._hidden(idx))  # (B, T, C) -> (B, T, V)
        loss = None if targets is None else token_cross_entropy(logits, targets)
        return logits, loss

    def _last_logits(self, idx: Tensor, kv_caches: list[KVCache] | None) -> Tensor:
        return self.lm_head(self._hidden(idx, kv_caches)[:, -1])  # (B, C) -> (B, V)


# ---------------------------------------------------------------------------------------------
# From Hugging Face's LlamaForCausalLM
# ---------------------------------------------------------------------------------------------

LLAMA_KEYS = {  # ours -> LlamaForCausalLM
    "tok_emb.weight": "model.embed_tokens.weight",
    "blocks.{i}.norm1.weight": "model.layers.{i}.input_layernorm.weight",
    "blocks.{i}.attn.q_proj.weight": "model.layers.{i}.self_attn.q_proj.weight",  # rows permuted
    "blocks.{i}.attn.k_proj.weight": "model.layers.{i}.self_attn.k_proj.weight",  # rows permuted
    "blocks.{i}.attn.v_proj.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blocks.{i}.attn.out_proj.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blocks.{i}.norm2.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blocks.{i}.ff.gate_proj.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blocks.{i}.ff.up_proj.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blocks.{i}.ff.down_proj.weight": "model.layers.{i}.mlp.down_proj.weight",
    "norm_f.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}
LLAMA_ROTARY = {"blocks.{i}.attn.q_proj.weight", "blocks.{i}.attn.k_proj.weight"}


def interleave_rotary_rows(weight: Tensor, n_heads: int) -> Tensor:
    """Reorder a q/k projection from Hugging Face's rotary layout to ours.

    Our ``RotaryEmbedding`` rotates adjacent channel pairs (2i, 2i+1), as the RoPE paper and
    Meta's original Llama code do; ``transformers`` rotates channel i with channel i + D/2
    ("rotate_half") and permuted the rows of its q/k weights once, at conversion, to match.
    This undoes that permutation: within each head our row 2i is their row i and our row
    2i+1 their row i + D/2. Attention scores are unchanged, since q and k are permuted alike.

    Args:
        weight: (heads * D, C) projection weight in Hugging Face's layout.
        n_heads: number of heads it holds (H for q, G for k).

    Returns:
        (heads * D, C) in our layout.
    """
    out_dim, in_dim = weight.shape
    head_dim = out_dim // n_heads
    w = weight.view(n_heads, 2, head_dim // 2, in_dim)  # their halves: (heads, 2, D/2, C)
    return w.transpose(1, 2).reshape(out_dim, in_dim)  # pairs adjacent: (heads, D/2, 2, C)


def llama_from_hf(model: Any) -> Llama:
    """Copy a ``transformers.LlamaForCausalLM`` (e.g. SmolLM2) into our ``Llama``.

    Args:
        model: a ``LlamaForCausalLM`` with the default rotary embeddings, no biases and SiLU.

    Returns:
        A ``Llama`` in evaluation mode, on the model's device and dtype, giving the same logits.
    """
    hc = model.config
    rope = getattr(hc, "rope_parameters", None) or getattr(hc, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"rope scaling {rope} is not supported (only the default RoPE)")
    if (
        hc.hidden_act != "silu"
        or getattr(hc, "attention_bias", False)
        or getattr(hc, "mlp_bias", False)
    ):
        raise ValueError(
            f"need hidden_act='silu' and no biases, got {hc.hidden_act!r}, "
            f"attention_bias={hc.attention_bias}, mlp_bias={getattr(hc, 'mlp_bias', False)}"
        )
    head_dim = getattr(hc, "head_dim", None) or hc.hidden_size // hc.num_attention_heads
    if head_dim * hc.num_attention_heads != hc.hidden_size:
        raise ValueError(f"head_dim={head_dim} * heads != hidden_size={hc.hidden_size}")
    config = LlamaConfig(
        vocab_size=hc.vocab_size,
        context_length=hc.max_position_embeddings,
        d_model=hc.hidden_size,
        n_layers=hc.num_hidden_layers,
        n_heads=hc.num_attention_heads,
        n_kv_heads=hc.num_key_value_heads,
        d_ff=hc.intermediate_size,
        rope_base=float(rope.get("rope_theta", getattr(hc, "rope_theta", 10000.0))),
        norm_eps=hc.rms_norm_eps,
        tie_weights=bool(hc.tie_word_embeddings),
    )
    theirs = model.state_dict()
    state: dict[str, Tensor] = {}
    for template, hf_template in LLAMA_KEYS.items():
        for i in range(config.n_layers if "{i}" in template else 1):
            t = theirs[hf_template.format(i=i)].detach().clone()  # ours own their memory
            if template in LLAMA_ROTARY:
                heads = config.n_heads if ".q_proj." in template else config.n_kv_heads
                t = interleave_rotary_rows(t, heads)
            state[template.format(i=i)] = t
    p = next(model.parameters())
    with torch.device("meta"):  # no random initialisation of 100M+ weights to overwrite
        ours = Llama(config)
    ours.load_state_dict(state, strict=True, assign=True)
    if config.tie_weights:
        ours.lm_head.weight = ours.tok_emb.weight
    for block in ours.blocks:  # the rotary tables are buffers: rebuild them off the meta device
        attn = block.attn
        attn.rope = RotaryEmbedding(attn.head_dim, config.context_length, config.rope_base)
    return ours.to(device=p.device, dtype=p.dtype).eval()
