"""Interpretability probes: induction heads, head ablation and the logit lens (chapter 15).

- ``AttentionOnlyTransformer``: the "attention-only" models of Elhage et al., "A Mathematical
  Framework for Transformer Circuits" (2021), https://transformer-circuits.pub/2021/framework/:
  token and position embeddings, a stack of pre-norm causal self-attention layers (the book's
  ``gpt.CausalSelfAttention``) with no feed-forward sublayer, a final LayerNorm and an unembedding.
- ``induction_batch``: random token sequences whose first part is repeated, the task on which two
  attention layers form **induction heads** (Olsson et al., "In-context Learning and Induction
  Heads", 2022, https://arxiv.org/abs/2209.11895).
- ``induction_head_scores`` and ``previous_token_scores``: how much each head attends to the token
  after the previous occurrence of the current token, and to the previous token.
- ``ablate_heads``: a context manager that zeroes chosen heads' outputs (in this module's model
  and in ``gpt.GPT``), to measure what a head is *for* rather than where it looks.
- ``logit_lens``: every layer's residual stream read through the final LayerNorm and the output
  layer of a ``gpt.GPT`` (nostalgebraist, "interpreting GPT: the logit lens", 2020,
  https://www.lesswrong.com/posts/AcKRB8wDpdaN6v6ru/interpreting-gpt-the-logit-lens).

Shape legend: B batch, T time, C channels (d_model), H heads, D head size, V vocabulary,
L layers, n the length of the repeated segment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.collate import token_cross_entropy
from llmbook_utils.gpt import GPT, CausalSelfAttention
from llmbook_utils.positional import LearnedPositionalEmbedding


@dataclass
class AttentionOnlyConfig:
    """Hyperparameters of an attention-only Transformer."""

    vocab_size: int  # V
    context_length: int  # longest sequence T
    d_model: int = 64  # width C
    n_layers: int = 2  # attention layers L
    n_heads: int = 4  # heads per layer H; must divide d_model

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")


class AttentionOnlyLayer(nn.Module):
    """x = x + CausalSelfAttention(LN(x)): a GPT block without its feed-forward sublayer."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)

    def forward(self, x: Tensor, return_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """(B, T, C) -> ((B, T, C), weights (B, H, T, T) or None)."""
        out, weights = self.attn(self.norm(x), return_weights=return_weights)
        return x + out, weights


class AttentionOnlyTransformer(nn.Module):
    """A decoder made of attention layers only (Elhage et al., 2021).

    Without feed-forward layers, everything the model computes is attention moving information
    between positions, so a head's role can be read from what it attends to and tested by
    removing it. Weights are initialised N(0, 0.02^2) as in GPT-2.

    Args:
        config: the hyperparameters.
    """

    def __init__(self, config: AttentionOnlyConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = LearnedPositionalEmbedding(c.context_length, c.d_model)
        self.blocks = nn.ModuleList(
            AttentionOnlyLayer(c.d_model, c.n_heads) for _ in range(c.n_layers)
        )
        self.norm_f = nn.LayerNorm(c.d_model)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(GPT._init_weights)  # N(0, 0.02^2) weights, zero biases

    def num_parameters(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def _run(self, idx: Tensor, return_weights: bool) -> tuple[Tensor, list[Tensor]]:
        if idx.dim() != 2 or idx.size(1) > self.config.context_length:
            raise ValueError(
                f"idx must be (B, T) with T <= {self.config.context_length}, got {tuple(idx.shape)}"
            )
        x = self.tok_emb(idx) + self.pos_emb(idx.size(1))  # (B, T, C) + (T, C)
        maps = []
        for block in self.blocks:
            x, weights = block(x, return_weights=return_weights)
            if return_weights:
                maps.append(weights)
        return self.lm_head(self.norm_f(x)), maps  # (B, T, V)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, V) and, with targets (B, T), the mean cross-entropy."""
        logits, _ = self._run(idx, return_weights=False)
        return logits, None if targets is None else token_cross_entropy(logits, targets)

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> Tensor:
        """Attention weights of every layer and head, (B, L, H, T, T), in evaluation mode."""
        was_training = self.training
        self.eval()
        _, maps = self._run(idx, return_weights=True)
        self.train(was_training)
        return torch.stack(maps, dim=1)  # L x (B, H, T, T) -> (B, L, H, T, T)


def induction_batch(
    batch_size: int,
    vocab_size: int,
    seq_len: int,
    min_repeat: int,
    max_repeat: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Random tokens whose first ``n`` positions are repeated right after them.

    Row b is ``r_1 .. r_n, r_1 .. r_n, u_1 .. u_m`` with ``n`` drawn uniformly from
    ``[min_repeat, max_repeat]`` per row (fixed when ``max_repeat`` is None) and fresh random
    tokens ``u`` up to ``seq_len``. The first half and the tail are unpredictable; the repeat is
    predictable only by looking back at the earlier copy. A varying ``n`` stops the model from
    solving the task by position alone ("attend n - 1 positions back"), so it must match content.

    Args:
        batch_size: rows B.
        vocab_size: tokens are drawn uniformly from ``0 .. vocab_size - 1``.
        seq_len: T, at least ``2 * max_repeat``.
        min_repeat: smallest repeated length n, >= 1.
        max_repeat: largest repeated length; None = ``min_repeat``.
        generator: for reproducible batches.

    Returns:
        ``(tokens, n)``: (B, T) token ids and (B,) the repeated length of each row.
    """
    max_repeat = min_repeat if max_repeat is None else max_repeat
    if not 1 <= min_repeat <= max_repeat or 2 * max_repeat > seq_len:
        raise ValueError(
            f"need 1 <= min_repeat={min_repeat} <= max_repeat={max_repeat} and "
            f"2 * max_repeat <= seq_len={seq_len}"
        )
    tokens = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)  # (B, T)
    n = torch.randint(min_repeat, max_repeat + 1, (batch_size,), generator=generator)  # (B,)
    pos = torch.arange(seq_len)  # (T,)
    second = (pos >= n[:, None]) & (pos < 2 * n[:, None])  # (B, T): the copy
    source = torch.where(second, pos - n[:, None], pos)  # copy position t from t - n
    return tokens.gather(1, source), n


def repeated_half_loss(model: nn.Module, tokens: Tensor, n: int) -> float:
    """Mean cross-entropy (nats) of predicting the second copy, positions n+1 .. 2n-1.

    Args:
        model: returns ``(logits, loss)`` from ``model(idx)``.
        tokens: (B, T) with ``tokens[:, n:2n] == tokens[:, :n]``.
        n: the repeated length.

    The first token of the copy (position n) follows the first copy's last token and cannot be
    predicted, so the loss covers the predictions of positions n+1 .. 2n-1.
    """
    with torch.no_grad():
        logits, _ = model(tokens[:, : 2 * n - 1])  # (B, 2n-1, V)
    logp = F.log_softmax(logits[:, n:].float(), dim=-1)  # predictions of positions n+1 .. 2n-1
    target = tokens[:, n + 1 : 2 * n]  # (B, n-1)
    return float(-logp.gather(-1, target.unsqueeze(-1)).mean())


def induction_head_scores(maps: Tensor, n: int) -> Tensor:
    """The induction score of every head: attention to the token after the earlier occurrence.

    On ``r_1..r_n, r_1..r_n`` the query at position ``n + i`` (token ``r_{i+1}`` in 1-based terms,
    0-based position n+i holds the token of position i) finds its earlier occurrence at position
    i and an induction head attends to the *next* position, i + 1 = (n + i) - n + 1. The score
    averages that attention weight over the queries of the second copy (Olsson et al., 2022,
    "prefix matching"). A head with uniform attention scores about 1 / (1.5 n); a perfect
    induction head scores 1.

    Args:
        maps: (B, L, H, T, T) attention weights with T >= 2n.
        n: the repeated length.

    Returns:
        (L, H) scores in [0, 1].
    """
    if maps.dim() != 5 or maps.size(-1) < 2 * n:
        raise ValueError(f"maps must be (B, L, H, T, T) with T >= 2n = {2 * n}, got {maps.shape}")
    queries = torch.arange(n, 2 * n, device=maps.device)  # (n,)
    keys = queries - n + 1
    return maps[:, :, :, queries, keys].mean(dim=(0, 3))  # (B, L, H, n) -> (L, H)


def previous_token_scores(maps: Tensor) -> Tensor:
    """Mean attention of each head from every position t >= 1 to position t - 1, (L, H)."""
    T = maps.size(-1)
    queries = torch.arange(1, T, device=maps.device)
    return maps[:, :, :, queries, queries - 1].mean(dim=(0, 3))


def _attention_modules(model: nn.Module) -> list[CausalSelfAttention]:
    blocks = getattr(model, "blocks", None)
    if blocks is None or not all(
        isinstance(getattr(b, "attn", None), CausalSelfAttention) for b in blocks
    ):
        raise ValueError(f"{type(model).__name__} has no .blocks[i].attn CausalSelfAttention")
    return [b.attn for b in blocks]


@contextlib.contextmanager
def ablate_heads(model: nn.Module, heads: Iterable[tuple[int, int]]) -> Iterator[None]:
    """Zero the output of the given heads while the ``with`` block runs ("zero ablation").

    Each head's output is the slice ``h*D : (h+1)*D`` of the concatenated heads that enter the
    output projection ``out_proj``; a forward pre-hook on ``out_proj`` zeroes that slice, so the
    head writes nothing into the residual stream. Works for ``AttentionOnlyTransformer`` and
    ``gpt.GPT`` (any model whose ``blocks[i].attn`` is a ``CausalSelfAttention``).

    Args:
        model: the model.
        heads: ``(layer, head)`` pairs, 0-based.
    """
    attns = _attention_modules(model)
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < len(attns) and 0 <= head < attns[layer].n_heads):
            raise ValueError(
                f"head ({layer}, {head}) does not exist: {len(attns)} layers of "
                f"{attns[0].n_heads} heads"
            )
        by_layer.setdefault(layer, []).append(head)

    def make_hook(dims: int, chosen: list[int]):
        def hook(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            (x,) = args  # (B, T, C), the heads side by side
            x = x.clone()
            for h in chosen:
                x[..., h * dims : (h + 1) * dims] = 0.0
            return (x,)

        return hook

    handles = [
        attns[layer].out_proj.register_forward_pre_hook(make_hook(attns[layer].head_dim, chosen))
        for layer, chosen in by_layer.items()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def logit_lens(model: GPT, idx: Tensor) -> Tensor:
    """Next-token log-probabilities read from the residual stream after every layer of a GPT.

    The residual stream after block l (l = 0 is the embedding, before any block) is passed
    through the model's own final LayerNorm and output layer, as if the remaining blocks were
    skipped. The last row equals the model's output (log-softmax of its logits).

    Args:
        model: a ``gpt.GPT`` (evaluation mode is used and restored).
        idx: (B, T) token ids.

    Returns:
        (L + 1, B, T, V) log-probabilities.
    """
    if idx.dim() != 2 or idx.size(1) > model.config.context_length:
        raise ValueError(
            f"idx must be (B, T) with T <= {model.config.context_length}, got {tuple(idx.shape)}"
        )
    was_training = model.training
    model.eval()
    x = model.tok_emb(idx) + model.pos_emb(idx.size(1))  # (B, T, C)
    streams = [x]
    for block in model.blocks:
        x, _ = block(x)
        streams.append(x)
    model.train(was_training)
    stacked = torch.stack(streams)  # (L + 1, B, T, C)
    return F.log_softmax(model.lm_head(model.norm_f(stacked)).float(), dim=-1)  # (L+1, B, T, V)
