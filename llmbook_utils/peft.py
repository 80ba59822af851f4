"""Parameter-efficient fine-tuning: LoRA, adapters, prompt tuning, prefix tuning and BitFit.

Each method freezes the pretrained weights and trains a small number of new (or selected)
parameters:

- ``LoRALinear`` / ``apply_lora``: W x + (alpha / r) B A x with a rank-r update B A next to a
  frozen ``nn.Linear`` (Hu et al., 2021, https://arxiv.org/abs/2106.09685). B starts at zero,
  so step 0 equals the base model; ``merge_lora`` folds B A into W for inference at no cost.
  The layout (``lora_A`` (r, in), ``lora_B`` (out, r), Kaiming-uniform A, scaling alpha / r)
  is the one of Hugging Face's ``peft`` library, so weights copy across one to one.
- ``Adapter`` / ``add_adapters``: a bottleneck MLP with a residual connection after a sublayer
  (Houlsby et al., 2019, https://arxiv.org/abs/1902.00751: after attention and after the
  feed-forward network; Pfeiffer et al., 2021, https://arxiv.org/abs/2005.00247: after the
  feed-forward network only).
- ``PromptTuning``: n learned input vectors in front of the token embeddings (Lester et al.,
  2021, https://arxiv.org/abs/2104.08691).
- ``PrefixTuning``: P learned key and value vectors in front of every layer's keys and values
  (Li and Liang, 2021, https://arxiv.org/abs/2101.00190).
- ``bitfit``: train the biases only (Ben Zaken et al., 2022, https://arxiv.org/abs/2106.10199).
- ``trainable_parameters``: how many parameters a method trains.

Shape legend: B batch, T time, C channels, H heads, D head size, P prefix length, r rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.attention import KVCache, MultiHeadAttention

# ---------------------------------------------------------------------------------------------
# Counting and freezing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterCount:
    """How many of a model's parameters are trained."""

    trainable: int  # parameters with requires_grad
    total: int  # all distinct parameters (a tied matrix counts once)

    @property
    def share(self) -> float:
        """trainable / total, in [0, 1]."""
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} || "
                f"trainable%: {100 * self.share:.4f}")  # fmt: skip


def trainable_parameters(model: nn.Module) -> ParameterCount:
    """Count the trainable and all parameters (the numbers ``peft`` prints)."""
    params = list(model.parameters())  # each shared tensor once
    return ParameterCount(
        trainable=sum(p.numel() for p in params if p.requires_grad),
        total=sum(p.numel() for p in params),
    )


def freeze(model: nn.Module) -> None:
    """Set ``requires_grad=False`` on every parameter."""
    for p in model.parameters():
        p.requires_grad_(False)


def bitfit(model: nn.Module) -> ParameterCount:
    """BitFit: freeze everything except the biases (names ending in ``bias``)."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("bias"))
    return trainable_parameters(model)


def _matches(name: str, targets: list[str] | tuple[str, ...]) -> bool:
    """peft's rule: a target matches a module named exactly so, or ending in ``.target``."""
    return any(name == t or name.endswith(f".{t}") for t in targets)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _targets(model: nn.Module, targets: list[str] | tuple[str, ...], kind: type) -> list[str]:
    """Names of the modules matching ``targets``; ValueError if none, or one of the wrong type."""
    if isinstance(targets, str):
        targets = [targets]
    names = [n for n, _ in model.named_modules() if n and _matches(n, targets)]
    if not names:
        linear = sorted({n.rpartition(".")[2] for n, m in model.named_modules()
                         if isinstance(m, nn.Linear)})  # fmt: skip
        raise ValueError(f"no module matches target_modules={list(targets)}; "
                         f"the model's nn.Linear names are {linear}")  # fmt: skip
    for n in names:
        if not isinstance(model.get_submodule(n), kind):
            raise ValueError(f"module {n!r} is a {type(model.get_submodule(n)).__name__}, "
                             f"not a {kind.__name__}")  # fmt: skip
    return names


# ---------------------------------------------------------------------------------------------
# LoRA
# ---------------------------------------------------------------------------------------------


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: h = W0 x + (alpha/r) B A x.

    Args:
        base: the pretrained layer; its weight and bias are frozen (``requires_grad=False``).
        r: the rank of the update (>= 1).
        alpha: the scale numerator; the update is multiplied by ``alpha / r``, so changing r
            does not change the size of the initial updates much (Hu et al., section 4.1).
        dropout: dropout on the input of the low-rank branch only.

    ``lora_A`` (r, in) is Kaiming-uniform (as ``nn.Linear`` and ``peft``), ``lora_B`` (out, r)
    is zero: the wrapped layer starts exactly equal to ``base``.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if r < 1 or r > min(base.in_features, base.out_features):
            raise ValueError(f"r={r} must be in [1, min(in, out) = "
                             f"{min(base.in_features, base.out_features)}]")  # fmt: skip
        if alpha <= 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"need alpha > 0 and dropout in [0, 1), got {alpha}, {dropout}")
        self.base = base
        freeze(base)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(
            torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device)
        )
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # peft's (and nn.Linear's) init
        self.dropout = nn.Dropout(dropout)
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> Tensor:
        """The update (alpha/r) B A, shape (out, in)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: Tensor) -> Tensor:
        """(..., in) -> (..., out)."""
        out = self.base(x)
        if self.merged:  # B A is inside base.weight already
            return out
        low_rank = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)  # via (..., r)
        return out + low_rank * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """W0 <- W0 + (alpha/r) B A: one plain matmul at inference, no extra latency."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo ``merge`` (to keep training, or to switch adapters)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def apply_lora(
    model: nn.Module,
    target_modules: list[str] | tuple[str, ...],
    r: int,
    alpha: float,
    dropout: float = 0.0,
) -> list[str]:
    """Freeze ``model`` and wrap every ``nn.Linear`` named in ``target_modules`` in LoRA.

    Matching follows ``peft``: ``"q_proj"`` matches ``layers.0.self_attn.q_proj`` (a full
    name or its last components). Only the LoRA factors are trainable afterwards; unfreeze a
    new classification head yourself (``peft``'s ``modules_to_save``).

    Args:
        model: modified in place.
        target_modules: module names, e.g. ``["q_proj", "k_proj", "v_proj", "out_proj"]``.
        r, alpha, dropout: as ``LoRALinear``.

    Returns:
        The names of the wrapped modules.

    Raises:
        ValueError: if nothing matches, or a matched module is not an ``nn.Linear``.
    """
    names = _targets(model, target_modules, nn.Linear)
    freeze(model)
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), r, alpha, dropout))
    return names


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """Every ``LoRALinear`` in ``model``."""
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer's update into its base weight; returns how many were merged."""
    layers = lora_layers(model)
    for layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Undo ``merge_lora``; returns how many layers were unmerged."""
    layers = lora_layers(model)
    for layer in layers:
        layer.unmerge()
    return len(layers)


# ---------------------------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------------------------


class Adapter(nn.Module):
    """A bottleneck with a residual connection: h + W_up GELU(W_down h).

    ``up`` starts at zero, so the adapter starts as the identity (Houlsby et al. initialise it
    near zero for the same reason).

    Args:
        d_model: width C of the hidden states.
        bottleneck: the inner width m << C; the adapter has 2 m C + m + C parameters.
    """

    def __init__(self, d_model: int, bottleneck: int) -> None:
        super().__init__()
        if not 1 <= bottleneck <= d_model:
            raise ValueError(f"bottleneck={bottleneck} must be in [1, d_model={d_model}]")
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        """(..., C) -> (..., C)."""
        return h + self.up(F.gelu(self.down(h)))  # via (..., m)


class WithAdapter(nn.Module):
    """A frozen sublayer output projection followed by an ``Adapter``: adapter(base(x))."""

    def __init__(self, base: nn.Linear, bottleneck: int) -> None:
        super().__init__()
        self.base = base
        freeze(base)
        self.adapter = Adapter(base.out_features, bottleneck)
        self.adapter.to(device=base.weight.device, dtype=base.weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """(..., in) -> (..., out)."""
        return self.adapter(self.base(x))


ADAPTER_PLACEMENTS = {  # which sublayers get an adapter after their output projection
    "houlsby": ("attention", "ffn"),  # two per layer
    "pfeiffer": ("ffn",),  # one per layer, after the feed-forward network
}


def add_adapters(
    model: nn.Module,
    bottleneck: int,
    placement: str = "houlsby",
    attention_output: str = "out_proj",
    ffn_output: str = "linear2",
) -> list[str]:
    """Freeze ``model`` and insert a bottleneck adapter after sublayer outputs.

    The adapter sits after the sublayer's output projection, before the dropout, the residual
    addition and the LayerNorm, as in Houlsby et al.'s figure 2.

    Args:
        model: modified in place (the book's ``Bert`` and ``GPT`` use the default names; for
            ``Llama`` pass ``ffn_output="down_proj"``).
        bottleneck: the adapters' inner width m.
        placement: ``"houlsby"`` (after attention and after the feed-forward network) or
            ``"pfeiffer"`` (after the feed-forward network only).
        attention_output: the name of the attention's output projection.
        ffn_output: the name of the feed-forward network's output projection.

    Returns:
        The names of the wrapped projections.
    """
    if placement not in ADAPTER_PLACEMENTS:
        raise ValueError(f"placement={placement!r} is not one of {sorted(ADAPTER_PLACEMENTS)}")
    which = {"attention": attention_output, "ffn": ffn_output}
    targets = [which[w] for w in ADAPTER_PLACEMENTS[placement]]
    names = _targets(model, targets, nn.Linear)
    freeze(model)
    for name in names:
        _replace(model, name, WithAdapter(model.get_submodule(name), bottleneck))
    return names


# ---------------------------------------------------------------------------------------------
# Prompt tuning and prefix tuning
# ---------------------------------------------------------------------------------------------


class PromptTuning(nn.Module):
    """Replaces a token-embedding module: n learned vectors, then the frozen embeddings.

    The model is fed ``n_virtual`` placeholder ids in front of each input
    (``PromptTuning.extend``); their embeddings are replaced by the learned soft prompt, so
    the rest of the model runs unchanged. Positions shift by n: the prompt takes positions
    0..n-1.

    Args:
        embedding: the model's (frozen) token embedding.
        n_virtual: number n of virtual tokens.
        init_ids: (n,) token ids whose embeddings initialise the prompt (Lester et al.: real
            vocabulary vectors work better than random ones); default n random rows.
    """

    def __init__(self, embedding: nn.Embedding, n_virtual: int, init_ids: Tensor | None = None):
        super().__init__()
        if n_virtual < 1:
            raise ValueError(f"n_virtual={n_virtual} must be >= 1")
        if init_ids is None:
            init_ids = torch.randint(embedding.num_embeddings, (n_virtual,))
        if init_ids.shape != (n_virtual,):
            raise ValueError(f"init_ids shape {tuple(init_ids.shape)} != (n_virtual={n_virtual},)")
        self.embedding = embedding
        freeze(embedding)
        self.n_virtual = n_virtual
        self.prompt = nn.Parameter(embedding.weight[init_ids.to(embedding.weight.device)].clone())

    def forward(self, input_ids: Tensor) -> Tensor:
        """(B, n + T) ids, the first n ignored -> (B, n + T, C) vectors."""
        B = input_ids.size(0)
        if input_ids.size(1) <= self.n_virtual:
            raise ValueError(f"input of length {input_ids.size(1)} has no room for "
                             f"n_virtual={self.n_virtual} prompt positions")  # fmt: skip
        tokens = self.embedding(input_ids[:, self.n_virtual :])  # (B, T, C)
        return torch.cat([self.prompt.expand(B, -1, -1), tokens], dim=1)  # (B, n + T, C)

    @staticmethod
    def extend(
        input_ids: Tensor, attention_mask: Tensor | None, n_virtual: int, placeholder_id: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Put ``n_virtual`` placeholder ids (and mask ones) in front: (B, T) -> (B, n + T)."""
        B = input_ids.size(0)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pad = input_ids.new_full((B, n_virtual), placeholder_id)
        ones = attention_mask.new_ones(B, n_virtual)
        return torch.cat([pad, input_ids], dim=1), torch.cat([ones, attention_mask], dim=1)


def apply_prompt_tuning(
    model: nn.Module, n_virtual: int, embedding: str = "word_emb", init_ids: Tensor | None = None
) -> PromptTuning:
    """Freeze ``model`` and replace its token embedding (``word_emb`` in ``Bert``, ``tok_emb``
    in ``GPT`` and ``Llama``) by a ``PromptTuning``; returns it."""
    module = model.get_submodule(embedding)
    if not isinstance(module, nn.Embedding):
        raise ValueError(f"{embedding!r} is a {type(module).__name__}, not an nn.Embedding")
    freeze(model)
    prompt = PromptTuning(module, n_virtual, init_ids)
    _replace(model, embedding, prompt)
    return prompt


class PrefixTuning(nn.Module):
    """Wraps one attention layer: P learned keys and values in front of its own, per head.

    Every query may attend to the P prefix positions (a padding or causal mask is extended
    with ones for them). Works with the book's ``MultiHeadAttention`` (``Bert``), GPT's
    ``CausalSelfAttention`` and Llama's ``GroupedQueryAttention`` (prefixes for the G
    key/value heads; the tokens' rotary positions then start at P, as with ``peft``).

    Args:
        attention: the frozen attention module.
        n_prefix: number of prefix positions P.
        std: initial standard deviation of the prefix vectors.
    """

    def __init__(self, attention: nn.Module, n_prefix: int, std: float = 0.02) -> None:
        super().__init__()
        if n_prefix < 1:
            raise ValueError(f"n_prefix={n_prefix} must be >= 1")
        self.attention = attention
        freeze(attention)
        heads = getattr(attention, "n_kv_heads", attention.n_heads)
        w = next(attention.parameters())
        shape = (heads, n_prefix, attention.head_dim)  # (H, P, D)
        self.prefix_keys = nn.Parameter(torch.randn(shape, dtype=w.dtype, device=w.device) * std)
        self.prefix_values = nn.Parameter(torch.randn(shape, dtype=w.dtype, device=w.device) * std)
        self.n_prefix = n_prefix

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
        """The wrapped attention's forward (same arguments), with the prefix prepended."""
        if kv_cache is not None:
            raise ValueError("PrefixTuning does not combine with an outer KV cache: "
                             "generate with use_cache=False")  # fmt: skip
        B, Tq = query.shape[:2]
        Tk = Tq if key is None else key.size(1)
        P = self.n_prefix
        cache = KVCache(P + Tk)  # the prefix goes in first; the layer appends its own keys
        cache.update(
            self.prefix_keys.expand(B, -1, -1, -1), self.prefix_values.expand(B, -1, -1, -1)
        )
        if not isinstance(self.attention, MultiHeadAttention):  # GPT / Llama: causal, no mask
            return self.attention(query, kv_cache=cache, return_weights=return_weights)
        if mask is not None:
            H = self.attention.n_heads
            mask = mask.expand(B, H, Tq, Tk)  # (B, H, Tq, Tk)
            mask = torch.cat([mask.new_ones(B, H, Tq, P), mask], dim=-1)  # (B, H, Tq, P + Tk)
        return self.attention(
            query, key, value, mask=mask, return_weights=return_weights, is_causal=is_causal,
            kv_cache=cache,
        )  # fmt: skip


def apply_prefix_tuning(
    model: nn.Module, n_prefix: int, attention: str = "self_attn", std: float = 0.02
) -> list[str]:
    """Freeze ``model`` and wrap every attention module named ``attention`` (``self_attn`` in
    ``Bert``, ``attn`` in ``GPT`` and ``Llama``) in a ``PrefixTuning``; returns their names."""
    names = _targets(model, [attention], nn.Module)
    freeze(model)
    for name in names:
        _replace(model, name, PrefixTuning(model.get_submodule(name), n_prefix, std))
    return names
