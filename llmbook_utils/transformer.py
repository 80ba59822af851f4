"""The encoder-decoder Transformer.

Paper: Vaswani et al., "Attention Is All You Need", 2017, https://arxiv.org/abs/1706.03762

The encoder reads the source sentence with bidirectional self-attention; the decoder writes the
target one token at a time with masked (causal) self-attention plus cross-attention to the
encoder's output ("memory"). The blocks (``FeedForward``, ``EncoderBlock``, ``DecoderBlock``) live
in ``llmbook_utils.blocks`` and are importable from here too; this module stacks them into the
model: ``TransformerConfig`` and ``Transformer``.

Shape legend: B batch, T time (Ts source, Tt target), C channels (d_model), H heads,
D head size, V vocabulary, L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.attention import padding_mask
from llmbook_utils.blocks import (  # re-exported, see __all__
    ACTIVATIONS,
    DecoderBlock,
    EncoderBlock,
    FeedForward,
)
from llmbook_utils.positional import sinusoidal_encoding

__all__ = [
    "ACTIVATIONS",
    "DecoderBlock",
    "EncoderBlock",
    "FeedForward",
    "Transformer",
    "TransformerConfig",
]


@dataclass
class TransformerConfig:
    """Hyperparameters of the encoder-decoder Transformer (defaults: the paper's base model)."""

    src_vocab_size: int  # source vocabulary size
    tgt_vocab_size: int  # target vocabulary size
    d_model: int = 512  # model width C
    n_heads: int = 8  # attention heads H
    n_encoder_layers: int = 6  # encoder blocks
    n_decoder_layers: int = 6  # decoder blocks
    d_ff: int = 2048  # feed-forward hidden width
    dropout: float = 0.1  # residual, embedding and attention dropout
    max_len: int = 512  # longest source or target sequence (sinusoidal table size)
    norm_first: bool = False  # pre-norm blocks (True) or the paper's post-norm (False)
    share_embeddings: bool = False  # one shared vocabulary: a single src/tgt embedding matrix
    tie_output: bool = True  # the output projection reuses the target embedding matrix
    pad_id: int = 0  # padding token: masked in attention, ignored in the loss
    activation: str = "relu"  # feed-forward activation
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_encoder_layers < 1 or self.n_decoder_layers < 1:
            raise ValueError(
                f"n_encoder_layers={self.n_encoder_layers} and "
                f"n_decoder_layers={self.n_decoder_layers} must both be >= 1"
            )
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                f"share_embeddings needs src_vocab_size={self.src_vocab_size} == "
                f"tgt_vocab_size={self.tgt_vocab_size}"
            )
        if not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise ValueError(f"pad_id={self.pad_id} is outside the vocabularies")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r} is not one of {ACTIVATIONS}")

    @classmethod
    def from_name(cls, name: str, **overrides: object) -> TransformerConfig:
        """A named preset, optionally with some fields changed.

        - ``"tiny"``: 64 wide, 4 heads, 2 + 2 layers (toy seq2seq tasks on a CPU; set the
          vocabulary sizes with ``src_vocab_size=..., tgt_vocab_size=...``).
        - ``"small"``: 256 wide, 4 heads, 3 + 3 layers.
        - ``"base"``: the paper's base model: 512 wide, 8 heads, 6 + 6 layers, d_ff 2048, one
          shared 37000-token vocabulary whose matrix serves as source embedding, target
          embedding and output projection: 63,082,496 parameters (the paper rounds to 65M).
        - ``"big"``: the paper's big model: 1024 wide, 16 heads, d_ff 4096, dropout 0.3.
        """
        bpe = 37000  # the paper's shared English-German byte-pair vocabulary
        presets = {
            "tiny": cls(
                32, 32, d_model=64, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=256
            ),
            "small": cls(
                500, 500, d_model=256, n_heads=4, n_encoder_layers=3, n_decoder_layers=3, d_ff=1024
            ),
            "base": cls(bpe, bpe, share_embeddings=True),
            "big": cls(
                bpe, bpe, d_model=1024, n_heads=16, d_ff=4096, dropout=0.3, share_embeddings=True
            ),
        }
        if name not in presets:
            raise ValueError(f"unknown Transformer preset {name!r}; known: {sorted(presets)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown TransformerConfig fields {unknown}; known: {sorted(known)}")
        return replace(presets[name], **overrides)


class Transformer(nn.Module):
    """Encoder-decoder Transformer for sequence-to-sequence tasks (translation, copying, ...).

    Token embeddings are scaled by sqrt(C) and added to the sinusoidal positional encoding
    (section 3.4 of the paper). Pre-norm models get a final LayerNorm after each stack.

    Args:
        config: the hyperparameters.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.src_emb = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_emb = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.register_buffer("pos_enc", sinusoidal_encoding(c.max_len, c.d_model), persistent=False)
        self.dropout = nn.Dropout(c.dropout)
        block_args = (c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation, c.norm_first)
        self.encoder = nn.ModuleList(
            EncoderBlock(*block_args, layer_norm_eps=c.layer_norm_eps)
            for _ in range(c.n_encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderBlock(*block_args, layer_norm_eps=c.layer_norm_eps)
            for _ in range(c.n_decoder_layers)
        )
        # Pre-norm stacks end un-normalised, so they get a final LayerNorm; post-norm ones don't.
        if c.norm_first:
            self.encoder_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
            self.decoder_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        else:
            self.encoder_norm = nn.Identity()
            self.decoder_norm = nn.Identity()
        self.out_proj = nn.Linear(c.d_model, c.tgt_vocab_size, bias=not c.tie_output)

        for p in self.parameters():  # Xavier for every matrix, as torch.nn.Transformer does
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        # Scaled by sqrt(C) in forward, so N(0, 1/C) gives unit-variance inputs.
        nn.init.normal_(self.src_emb.weight, std=c.d_model**-0.5)
        nn.init.normal_(self.tgt_emb.weight, std=c.d_model**-0.5)
        if c.share_embeddings:
            self.tgt_emb.weight = self.src_emb.weight
        if c.tie_output:
            self.out_proj.weight = self.tgt_emb.weight

    def num_parameters(self) -> int:
        """Number of distinct parameters (a tied matrix is counted once)."""
        return sum(p.numel() for p in self.parameters())

    def _check_tokens(self, name: str, tokens: Tensor) -> None:
        if tokens.dim() != 2 or tokens.dtype not in (torch.long, torch.int):
            raise ValueError(f"{name} must be integer ids (B, T), got {tuple(tokens.shape)}")
        if tokens.size(1) > self.config.max_len:
            raise ValueError(f"{name} length {tokens.size(1)} > max_len={self.config.max_len}")

    def _embed(self, tokens: Tensor, embedding: nn.Embedding) -> Tensor:
        T = tokens.size(1)
        x = embedding(tokens) * math.sqrt(self.config.d_model)  # (B, T) -> (B, T, C)
        return self.dropout(x + self.pos_enc[:T])  # + (T, C)

    def encode(
        self, src: Tensor, src_attention_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run the encoder.

        Args:
            src: source ids (B, Ts).
            src_attention_mask: (B, Ts), 1 for real tokens, 0 for padding; default
                ``src != pad_id``.

        Returns:
            ``(memory, memory_mask)``: (B, Ts, C) and the bool mask (B, 1, 1, Ts).
        """
        self._check_tokens("src", src)
        if src_attention_mask is None:
            src_attention_mask = src != self.config.pad_id
        if src_attention_mask.shape != src.shape:
            raise ValueError(
                f"src_attention_mask shape {tuple(src_attention_mask.shape)} != "
                f"src shape {tuple(src.shape)}"
            )
        mask = padding_mask(src_attention_mask)  # (B, Ts) -> (B, 1, 1, Ts)
        x = self._embed(src, self.src_emb)
        for block in self.encoder:
            x, _ = block(x, mask=mask)
        return self.encoder_norm(x), mask

    def decode(
        self,
        tgt_in: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        return_weights: bool = False,
    ) -> tuple[Tensor, list[Tensor]]:
        """Run the decoder and the output projection.

        Args:
            tgt_in: target ids shifted right, starting with BOS (B, Tt).
            memory: encoder output (B, Ts, C).
            memory_mask: bool (B, 1, 1, Ts) from ``encode``.
            return_weights: collect the cross-attention weights of every layer.

        Returns:
            ``(logits, cross_weights)``: (B, Tt, V) and a list of L tensors (B, H, Tt, Ts)
            (empty unless ``return_weights``).
        """
        self._check_tokens("tgt_in", tgt_in)
        x = self._embed(tgt_in, self.tgt_emb)
        maps = []
        for block in self.decoder:
            x, weights = block(x, memory, memory_mask=memory_mask, return_weights=return_weights)
            if return_weights:
                maps.append(weights)
        return self.out_proj(self.decoder_norm(x)), maps

    def forward(
        self,
        src: Tensor,
        tgt_in: Tensor,
        targets: Tensor | None = None,
        src_attention_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced forward pass.

        Args:
            src: source ids (B, Ts); padding (``pad_id``) is masked out of attention.
            tgt_in: decoder input (B, Tt): BOS then the target without its last token.
            targets: (B, Tt), the target tokens to predict; ``pad_id`` positions are ignored.
            src_attention_mask: optional (B, Ts) 1/0 mask; default ``src != pad_id``.

        Returns:
            ``(logits, loss)``: (B, Tt, V) and the mean cross-entropy (None without targets).
        """
        if src.dim() != 2 or tgt_in.dim() != 2 or src.size(0) != tgt_in.size(0):
            raise ValueError(
                f"src {tuple(src.shape)} and tgt_in {tuple(tgt_in.shape)} must be (B, T) "
                "with the same batch size"
            )
        memory, memory_mask = self.encode(src, src_attention_mask)
        logits, _ = self.decode(tgt_in, memory, memory_mask)
        loss = None
        if targets is not None:
            if targets.shape != tgt_in.shape:
                raise ValueError(
                    f"targets shape {tuple(targets.shape)} != tgt_in shape {tuple(tgt_in.shape)}"
                )
            loss = F.cross_entropy(
                logits.flatten(0, 1),  # (B, Tt, V) -> (B*Tt, V)
                targets.flatten(),  # (B, Tt) -> (B*Tt,)
                ignore_index=self.config.pad_id,
            )
        return logits, loss

    @torch.no_grad()
    def greedy_decode(
        self,
        src: Tensor,
        max_len: int,
        bos_id: int,
        eos_id: int,
        src_attention_mask: Tensor | None = None,
    ) -> Tensor:
        """Translate by always taking the most likely next token.

        Args:
            src: source ids (B, Ts).
            max_len: the most tokens to generate after BOS (at most ``config.max_len``).
            bos_id: token that starts every output.
            eos_id: token that ends an output; after it a row is filled with ``pad_id``.
            src_attention_mask: optional (B, Ts) 1/0 mask.

        Returns:
            Ids (B, 1 + n) starting with BOS, n <= max_len (stops early once every row has EOS).
        """
        if not 1 <= max_len <= self.config.max_len:
            raise ValueError(f"max_len={max_len} must be in [1, {self.config.max_len}]")
        was_training = self.training
        self.eval()
        memory, memory_mask = self.encode(src, src_attention_mask)
        out = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits, _ = self.decode(out, memory, memory_mask)
            next_id = logits[:, -1].argmax(dim=-1)  # (B,)
            next_id = next_id.masked_fill(done, self.config.pad_id)
            out = torch.cat([out, next_id[:, None]], dim=1)  # (B, t) -> (B, t + 1)
            done |= next_id == eos_id
            if bool(done.all()):
                break
        self.train(was_training)
        return out

    @torch.no_grad()
    def cross_attention_maps(
        self, src: Tensor, tgt_in: Tensor, src_attention_mask: Tensor | None = None
    ) -> Tensor:
        """Cross-attention weights of every decoder layer (evaluation mode, no gradient).

        Returns:
            Tensor (B, L, H, Tt, Ts): for each target position, how much each head of each
            layer looks at each source position.
        """
        was_training = self.training
        self.eval()
        memory, memory_mask = self.encode(src, src_attention_mask)
        _, maps = self.decode(tgt_in, memory, memory_mask, return_weights=True)
        self.train(was_training)
        return torch.stack(maps, dim=1)  # L x (B, H, Tt, Ts) -> (B, L, H, Tt, Ts)
