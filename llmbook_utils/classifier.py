"""Sentence classification on top of an encoder: mean pooling, dropout, a linear head.

``MeanPoolingClassifier`` summarises a text by the mean of its real tokens' last-layer vectors
(padding excluded), the pooling sentence encoders such as all-MiniLM-L6-v2 were trained with
(Reimers and Gurevych, 2019, https://arxiv.org/abs/1908.10084), and classifies that vector with
dropout and one linear layer. ``bert.BertForSequenceClassification`` is the alternative that
classifies the pooled ``[CLS]`` vector, as the original BERT does.

Shape legend: B batch, T time (tokens), C channels (d_model), K classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.bert import Bert


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """The mean of the vectors at real tokens (mask 1), ignoring padding (mask 0).

    Args:
        hidden: (B, T, C) token vectors.
        attention_mask: (B, T), 1 at real tokens and 0 at padding.

    Returns:
        (B, C); a row without any real token gives zeros (the count is clamped, as in
        sentence-transformers).
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T) -> (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # (B, C)


class MeanPoolingClassifier(nn.Module):
    """An encoder, mean pooling over the real tokens, dropout and a linear layer to K classes.

    Args:
        encoder: a ``Bert`` (pretrained or freshly initialised); its pretraining heads, if any,
            are not used.
        num_labels: the number of classes K (>= 2).
        dropout: dropout before the linear layer; default the encoder's ``config.dropout``.
        class_weights: optional (K,) weights of the cross-entropy, e.g. for imbalanced classes.
    """

    def __init__(
        self,
        encoder: Bert,
        num_labels: int,
        dropout: float | None = None,
        class_weights: Tensor | None = None,
    ) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels={num_labels} must be >= 2")
        dropout = encoder.config.dropout if dropout is None else dropout
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        if class_weights is not None and class_weights.shape != (num_labels,):
            raise ValueError(
                f"class_weights shape {tuple(class_weights.shape)} != (num_labels={num_labels},)"
            )
        self.encoder = encoder
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.d_model, num_labels)
        self.register_buffer(
            "class_weights", None if class_weights is None else class_weights.float().clone()
        )

    def pool(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """The mean of the real tokens' last-layer vectors, (B, C).

        Args:
            input_ids: (B, T) token ids.
            attention_mask: (B, T), 1 at real tokens and 0 at padding; None: no padding.
            token_type_ids: (B, T) segment ids; None: all 0.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden, _, _ = self.encoder.encode(input_ids, token_type_ids, attention_mask)  # (B, T, C)
        return mean_pool(hidden, attention_mask)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Class logits (B, K) and, with ``labels`` (B,), the mean cross-entropy loss."""
        pooled = self.pool(input_ids, attention_mask, token_type_ids)  # (B, C)
        logits = self.classifier(self.dropout(pooled))  # (B, C) -> (B, K)
        loss = None
        if labels is not None:
            if labels.shape != (input_ids.size(0),):
                raise ValueError(f"labels shape {tuple(labels.shape)} != (B={input_ids.size(0)},)")
            loss = F.cross_entropy(logits, labels, weight=self.class_weights)
        return logits, loss
