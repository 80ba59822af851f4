"""Knowledge distillation: a small student trained on a large teacher's soft labels (chapter 15).

Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015,
https://arxiv.org/abs/1503.02531. The teacher's logits z_t and the student's z_s are softened
by a temperature tau > 0, p = softmax(z / tau), and the student minimises

    L_KD = alpha * tau^2 * KL(p_t || p_s) + (1 - alpha) * CE(z_s, y),

where the factor tau^2 keeps the soft term's gradients at the same scale as tau changes (the
gradient of the KL term with respect to z_s is (p_s - p_t) / tau, and its size shrinks by
another 1 / tau for large tau). With ``alpha = 1`` no true label is needed: the teacher labels
unlabelled text, the *transfer set*.

- ``distillation_loss``: L_KD, averaged over the batch.
- ``BagOfEmbeddingsClassifier``: a tiny student in the style of fastText (Joulin et al., "Bag
  of Tricks for Efficient Text Classification", 2017, https://arxiv.org/abs/1607.01759): the mean
  of the token embeddings of a text, then one linear layer. It reads the teacher's WordPiece ids,
  so teacher and student see the same tokens.

Shape legend: B batch, T time (tokens), K classes, E embedding width.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.classifier import mean_pool


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 2.0,
    alpha: float = 1.0,
    labels: Tensor | None = None,
) -> Tensor:
    """Hinton et al.'s loss: alpha tau^2 KL(p_t || p_s) + (1 - alpha) CE(student, labels).

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K), treated as constants (no gradient flows into the teacher).
        temperature: tau > 0.
        alpha: weight of the soft term in [0, 1]; below 1, ``labels`` are required.
        labels: (B,) true classes, for the hard term.

    Returns:
        A scalar: the KL divergence summed over classes and averaged over the batch, times
        tau^2 and alpha, plus the weighted mean cross-entropy.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} "
            "logits must both be (B, K)"
        )
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be in [0, 1]")
    if alpha < 1.0 and labels is None:
        raise ValueError(f"alpha={alpha} < 1 weights the hard labels, so labels are required")
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)  # (B, K)
    log_p_t = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)  # (B, K)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1).mean()  # KL(p_t || p_s), batch mean
    loss = alpha * temperature**2 * kl
    if alpha < 1.0:
        loss = loss + (1.0 - alpha) * F.cross_entropy(student_logits, labels)
    return loss


class BagOfEmbeddingsClassifier(nn.Module):
    """Mean of token embeddings (padding excluded), then a linear layer: (B, T) -> (B, K).

    Args:
        vocab_size: number of token ids.
        embed_dim: E, the width of the embeddings.
        num_labels: K >= 2.
        pad_id: the padding id, whose embedding is fixed at zero and excluded from the mean.
    """

    def __init__(self, vocab_size: int, embed_dim: int, num_labels: int, pad_id: int = 0) -> None:
        super().__init__()
        if vocab_size < 1 or embed_dim < 1 or num_labels < 2:
            raise ValueError(
                f"need vocab_size={vocab_size} >= 1, embed_dim={embed_dim} >= 1 and "
                f"num_labels={num_labels} >= 2"
            )
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id={pad_id} must be a token id below vocab_size={vocab_size}")
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.head = nn.Linear(embed_dim, num_labels)

    def num_parameters(self) -> int:
        """Number of parameters, the whole embedding table included."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Class logits (B, K) for token ids (B, T); ``attention_mask`` (B, T), 1 at real tokens.

        Without a mask, every position whose id is not ``pad_id`` counts as real.
        """
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_id).long()
        return self.head(mean_pool(self.embed(input_ids), attention_mask))  # (B, E) -> (B, K)
