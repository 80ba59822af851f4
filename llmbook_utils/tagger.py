"""A character-level BiLSTM(-CRF) token tagger for named-entity recognition.

Paper: Lample et al., "Neural Architectures for Named Entity Recognition", NAACL 2016,
https://arxiv.org/abs/1603.01360 (a bidirectional LSTM gives each position an emission score
per tag; a CRF on top scores whole tag sequences). With ``use_crf=False`` the same network
predicts each tag independently with a softmax, the baseline the CRF is compared with.

Shape legend: B batch, T time (characters), C embedding size, H hidden size per direction,
K tags.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmbook_utils.crf import LinearChainCRF, bio_allowed

PAD, UNK = "<pad>", "<unk>"


@dataclass
class TaggerConfig:
    """Sizes of a ``BiLSTMTagger``."""

    vocab_size: int  # characters, including <pad> (index 0) and <unk> (index 1)
    labels: tuple[str, ...]  # tag names, e.g. ("O", "B-PER", "I-PER", ...)
    embed_dim: int = 64  # C, character embedding size
    hidden_size: int = 64  # H, LSTM state size per direction
    num_layers: int = 1  # stacked BiLSTM layers
    dropout: float = 0.2  # on the embeddings and the LSTM outputs
    use_crf: bool = True  # a CRF layer on top (else per-position softmax)

    def __post_init__(self) -> None:
        if self.vocab_size < 3 or len(self.labels) < 1:
            raise ValueError(
                f"vocab_size={self.vocab_size}, {len(self.labels)} labels: need >= 3 and >= 1"
            )
        if min(self.embed_dim, self.hidden_size, self.num_layers) < 1:
            raise ValueError(
                f"embed_dim={self.embed_dim}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers}: all must be positive"
            )
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")
        self.labels = tuple(self.labels)


def build_vocab(sentences: Sequence[Sequence[str]], min_count: int = 1) -> dict[str, int]:
    """Character -> index, with ``<pad>`` = 0 and ``<unk>`` = 1, most frequent first."""
    counts = Counter(ch for sentence in sentences for ch in sentence)
    chars = [ch for ch, n in counts.most_common() if n >= min_count]
    return {PAD: 0, UNK: 1, **{ch: i + 2 for i, ch in enumerate(chars)}}


def encode_batch(
    sentences: Sequence[Sequence[str]], vocab: dict[str, int],
    tags: Sequence[Sequence[str]] | None = None, labels: Sequence[str] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:  # fmt: skip
    """Pad a batch of character sequences (and their tags) into tensors.

    Returns:
        ``(ids, mask, tag_ids)``: (B, T) long, (B, T) bool, (B, T) long or None; padding has
        id 0 and tag 0.
    """
    if any(len(s) == 0 for s in sentences):
        raise ValueError("an empty sentence: every sentence needs at least one character")
    length = max(len(s) for s in sentences)
    ids = torch.zeros(len(sentences), length, dtype=torch.long)
    mask = torch.zeros(len(sentences), length, dtype=torch.bool)
    tag_ids = None if tags is None else torch.zeros(len(sentences), length, dtype=torch.long)
    index = {label: i for i, label in enumerate(labels or [])}
    for b, sentence in enumerate(sentences):
        ids[b, : len(sentence)] = torch.tensor([vocab.get(ch, 1) for ch in sentence])
        mask[b, : len(sentence)] = True
        if tag_ids is not None:
            tag_ids[b, : len(sentence)] = torch.tensor([index[t] for t in tags[b]])
    return ids, mask, tag_ids


class BiLSTMTagger(nn.Module):
    """Embedding -> BiLSTM -> linear emissions (B, T, K) -> CRF or softmax."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        num_tags = len(config.labels)
        self.char_emb = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(
            config.embed_dim, config.hidden_size, num_layers=config.num_layers,
            batch_first=True, bidirectional=True,
        )  # fmt: skip
        self.drop = nn.Dropout(config.dropout)
        self.emission = nn.Linear(2 * config.hidden_size, num_tags)
        self.crf = LinearChainCRF(num_tags, *bio_allowed(config.labels)) if config.use_crf else None

    def emissions(self, ids: Tensor, mask: Tensor) -> Tensor:
        """(B, T, K) emission scores of every position and tag."""
        x = self.drop(self.char_emb(ids))  # (B, T, C)
        lengths = mask.long().sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return self.emission(self.drop(out))  # (B, T, 2H) -> (B, T, K)

    def forward(
        self, ids: Tensor, mask: Tensor, tags: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Emissions (B, T, K) and, given tags (B, T), the loss: the CRF's mean negative
        log-likelihood per sentence, or the softmax's mean cross-entropy per character."""
        logits = self.emissions(ids, mask)
        if tags is None:
            return logits, None
        if self.crf is not None:
            return logits, self.crf.nll(logits, tags, mask)
        return logits, F.cross_entropy(logits[mask], tags[mask])

    @torch.no_grad()
    def predict(self, ids: Tensor, mask: Tensor) -> list[list[int]]:
        """Tag indices of each sentence, cut to its length (Viterbi with a CRF, else argmax)."""
        logits = self.emissions(ids, mask)
        if self.crf is not None:
            return self.crf.decode(logits, mask)
        best = logits.argmax(-1).tolist()  # (B, T)
        return [row[:n] for row, n in zip(best, mask.long().sum(1).tolist(), strict=True)]
