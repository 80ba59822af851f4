"""BERT: a bidirectional Transformer encoder pretrained with masked language modelling.

Paper: Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding", 2018, https://arxiv.org/abs/1810.04805

Embeddings (word + learned position + token type, then LayerNorm and dropout), a stack of
post-norm encoder blocks (``llmbook_utils.transformer.EncoderBlock`` with GELU), a pooler (tanh
of a linear map of the [CLS] vector) and two pretraining heads: masked-language-model (MLM)
logits, whose decoder shares the word-embedding matrix, and next-sentence prediction (NSP).
Weights map one-to-one from Hugging Face's ``BertModel`` (see ``llmbook_utils.hf``).

Shape legend: B batch, T time, C channels (d_model), H heads, D head size, V vocabulary,
L layers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.attention import padding_mask
from llmbook_utils.blocks import EncoderBlock
from llmbook_utils.positional import LearnedPositionalEmbedding


@dataclass
class BertConfig:
    """Hyperparameters of a BERT encoder."""

    vocab_size: int  # V, WordPiece vocabulary size (30522 for the uncased English models)
    context_length: int  # the longest input (position table size; 512 in BERT)
    d_model: int  # width C
    n_layers: int  # number of encoder blocks L
    n_heads: int  # attention heads H; must divide d_model
    d_ff: int  # feed-forward hidden width (4 * d_model in BERT)
    type_vocab_size: int = 2  # token types (segment A / segment B)
    dropout: float = 0.1  # on embeddings, attention weights and residual branches
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon (BERT: 1e-12)
    pad_token_id: int = 0  # [PAD]: its embedding row starts at zero and gets no gradient

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if self.type_vocab_size < 1:
            raise ValueError(f"type_vocab_size={self.type_vocab_size} must be >= 1")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"pad_token_id={self.pad_token_id} outside vocab_size={self.vocab_size}"
            )

    @classmethod
    def from_name(cls, name: str, **overrides: object) -> BertConfig:
        """A named preset, optionally with some fields changed (``vocab_size=...``).

        All use the uncased WordPiece vocabulary (30522) and context 512 unless overridden.

        - ``"tiny"`` (2 layers, 128 wide, 2 heads), ``"mini"`` (4, 256, 4), ``"small"``
          (4, 512, 8): the compact BERTs of Turc et al., 2019, https://arxiv.org/abs/1908.08962
        - ``"minilm"``: the shape of all-MiniLM-L6-v2 (6 layers, 384 wide, 12 heads, d_ff 1536),
          the pretrained encoder the book ships.
        - ``"bert-base"``: BERT-base (12 layers, 768 wide, 12 heads, d_ff 3072); the encoder
          with pooler has 109,482,240 parameters.
        """
        presets = {
            "tiny": cls(30522, 512, d_model=128, n_layers=2, n_heads=2, d_ff=512),
            "mini": cls(30522, 512, d_model=256, n_layers=4, n_heads=4, d_ff=1024),
            "small": cls(30522, 512, d_model=512, n_layers=4, n_heads=8, d_ff=2048),
            "minilm": cls(30522, 512, d_model=384, n_layers=6, n_heads=12, d_ff=1536),
            "bert-base": cls(30522, 512, d_model=768, n_layers=12, n_heads=12, d_ff=3072),
        }
        if name not in presets:
            raise ValueError(f"unknown BERT preset {name!r}; known: {sorted(presets)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown BertConfig fields {unknown}; known: {sorted(known)}")
        return replace(presets[name], **overrides)


@dataclass
class BertOutput:
    """What ``Bert.forward`` returns."""

    last_hidden_state: Tensor  # (B, T, C), the final layer's output
    pooled_output: Tensor  # (B, C), tanh(W h_[CLS] + b)
    mlm_logits: Tensor | None  # (B, T, V); None for a model without pretraining heads
    nsp_logits: Tensor | None  # (B, 2), "is B the next segment?"; None without heads
    attentions: Tensor | None = None  # (B, L, H, T, T) when return_attention=True


class Bert(nn.Module):
    """BERT encoder with pooler and (optionally) the MLM and NSP pretraining heads.

    Args:
        config: the hyperparameters.
        pretraining_heads: build the MLM and NSP heads (False for a fine-tuned classifier, which
            then neither stores nor computes them).
    """

    def __init__(self, config: BertConfig, pretraining_heads: bool = True) -> None:
        super().__init__()
        self.config = config
        c = config
        self.word_emb = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_token_id)
        self.pos_emb = LearnedPositionalEmbedding(c.context_length, c.d_model)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.d_model)
        self.emb_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)
        # BERT's layer is the paper's post-norm encoder block with GELU and no dropout inside
        # the feed-forward network.
        self.layers = nn.ModuleList(
            EncoderBlock(
                c.d_model,
                c.n_heads,
                c.d_ff,
                c.dropout,
                activation="gelu",
                norm_first=False,
                layer_norm_eps=c.layer_norm_eps,
                ff_dropout=0.0,
            )
            for _ in range(c.n_layers)
        )
        self.pooler = nn.Linear(c.d_model, c.d_model)
        self.pretraining_heads = pretraining_heads
        if pretraining_heads:
            self.mlm_transform = nn.Linear(c.d_model, c.d_model)
            self.mlm_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
            self.mlm_decoder = nn.Linear(c.d_model, c.vocab_size)  # weight tied below, own bias
            self.nsp_head = nn.Linear(c.d_model, 2)

        self.apply(self._init_weights)
        if pretraining_heads:
            self.mlm_decoder.weight = self.word_emb.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])

    def num_parameters(self, exclude_heads: bool = False) -> int:
        """Number of distinct parameters (the tied MLM decoder matrix counts once).

        Args:
            exclude_heads: leave out the pretraining heads (MLM transform, LayerNorm and bias,
                NSP), counting the encoder with its pooler, as BERT's model card does.
        """
        return sum(
            p.numel()
            for name, p in self.named_parameters()  # shared tensors are listed once
            if not (exclude_heads and name.startswith(("mlm_", "nsp_")))
        )

    def encode(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Run embeddings, encoder and pooler, without the pretraining heads.

        Args: as ``forward``.

        Returns:
            ``(last_hidden_state, pooled_output, attentions)``: (B, T, C), (B, C) and
            (B, L, H, T, T) or None.
        """
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.long, torch.int):
            raise ValueError(
                f"input_ids must be integer ids (B, T), got {tuple(input_ids.shape)} "
                f"of dtype {input_ids.dtype}"
            )
        seq_len = input_ids.size(1)
        if seq_len > self.config.context_length:
            raise ValueError(
                f"sequence length {seq_len} > context_length={self.config.context_length}"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        for name, t in (("token_type_ids", token_type_ids), ("attention_mask", attention_mask)):
            if t is not None and t.shape != input_ids.shape:
                raise ValueError(
                    f"{name} shape {tuple(t.shape)} != input_ids shape {tuple(input_ids.shape)}"
                )
        mask = None if attention_mask is None else padding_mask(attention_mask)  # (B, 1, 1, T)

        x = self.word_emb(input_ids) + self.type_emb(token_type_ids)  # (B, T, C)
        x = x + self.pos_emb(seq_len)  # + (T, C)
        x = self.dropout(self.emb_norm(x))
        maps = []
        for layer in self.layers:
            x, weights = layer(x, mask=mask, return_weights=return_attention)
            if return_attention:
                maps.append(weights)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # the [CLS] vector: (B, C)
        attentions = torch.stack(maps, dim=1) if return_attention else None  # (B, L, H, T, T)
        return x, pooled, attentions

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> BertOutput:
        """Encode a batch and apply the pretraining heads.

        Args:
            input_ids: token ids (B, T), T <= context_length, starting with [CLS].
            token_type_ids: (B, T) segment ids (0 = first segment); default all 0.
            attention_mask: (B, T), 1 for real tokens, 0 for padding; default all 1.
            return_attention: also return every layer's attention weights.

        Returns:
            ``BertOutput``; ``mlm_logits`` and ``nsp_logits`` are None without heads. Use
            ``encode`` when only the hidden states are needed (it skips the (B, T, V) logits).
        """
        hidden, pooled, attentions = self.encode(
            input_ids, token_type_ids, attention_mask, return_attention
        )
        mlm_logits = nsp_logits = None
        if self.pretraining_heads:
            h = self.mlm_norm(F.gelu(self.mlm_transform(hidden)))  # (B, T, C)
            mlm_logits = self.mlm_decoder(h)  # (B, T, C) -> (B, T, V)
            nsp_logits = self.nsp_head(pooled)  # (B, C) -> (B, 2)
        return BertOutput(hidden, pooled, mlm_logits, nsp_logits, attentions)

    @torch.no_grad()
    def attention_maps(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        """Attention weights of every layer and head, (B, L, H, T, T) (evaluation mode)."""
        was_training = self.training
        self.eval()
        _, _, attentions = self.encode(input_ids, token_type_ids, attention_mask, True)
        self.train(was_training)
        return attentions


class BertForSequenceClassification(nn.Module):
    """BERT encoder + dropout + a linear classifier on the pooled [CLS] vector.

    Args:
        config: the encoder's hyperparameters.
        num_labels: number of classes (>= 2).
        class_weights: optional (num_labels,) weights for the cross-entropy, e.g. for
            imbalanced classes.
    """

    def __init__(
        self, config: BertConfig, num_labels: int, class_weights: Tensor | None = None
    ) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels={num_labels} must be >= 2")
        if class_weights is not None and class_weights.shape != (num_labels,):
            raise ValueError(
                f"class_weights shape {tuple(class_weights.shape)} != (num_labels={num_labels},)"
            )
        self.num_labels = num_labels
        self.bert = Bert(config, pretraining_heads=False)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)
        self.register_buffer(
            "class_weights", None if class_weights is None else class_weights.float().clone()
        )

    @classmethod
    def from_bert(
        cls, bert: Bert, num_labels: int, class_weights: Tensor | None = None
    ) -> BertForSequenceClassification:
        """A classifier whose encoder starts from a (pretrained) ``Bert``, without its heads."""
        model = cls(bert.config, num_labels, class_weights)
        encoder_state = {
            k: v for k, v in bert.state_dict().items() if not k.startswith(("mlm_", "nsp_"))
        }
        model.bert.load_state_dict(encoder_state)
        device = next(bert.parameters()).device
        return model.to(device)

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Class logits (B, num_labels) and, with ``labels`` (B,), the cross-entropy loss."""
        _, pooled, _ = self.bert.encode(input_ids, token_type_ids, attention_mask)
        logits = self.classifier(self.dropout(pooled))  # (B, C) -> (B, num_labels)
        loss = None
        if labels is not None:
            if labels.shape != (input_ids.size(0),):
                raise ValueError(f"labels shape {tuple(labels.shape)} != (B={input_ids.size(0)},)")
            loss = F.cross_entropy(logits, labels, weight=self.class_weights)
        return logits, loss
