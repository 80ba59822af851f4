"""Knowledge graphs: triples, a networkx graph with multi-hop queries, and TransE.

A knowledge graph stores facts as triples ``(head, relation, tail)``, e.g.
``("克林顿", "holds_post", "美国")``. ``build_graph`` puts them into a ``networkx``
``MultiDiGraph`` (one edge per triple, the relation as its ``relation`` attribute), and
``follow_path`` answers a multi-hop query: start at an entity and follow a given sequence of
relations.

TransE (Bordes et al., "Translating Embeddings for Modeling Multi-relational Data", NeurIPS 2013)
embeds entities and relations in the same space so that ``e_h + r ~= e_t`` for true triples: the
score of a triple is ``-||e_h + r - e_t||_p``, trained with a margin loss against corrupted
triples (head or tail replaced by a random entity), entity vectors renormalised to unit length
before every step. Link prediction ranks every entity as the missing tail (or head); the *filtered*
rank ignores the other entities that also form a known true triple, and Hits@k / MRR summarise
the ranks.

``load_relation_examples`` reads the book's small hand-labelled relation set on People's Daily
sentences (``data_files/peoples_daily_relations.tsv``).

Shape legend: N triples, B batch, E entities, D embedding size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Triple = tuple[str, str, str]  # (head, relation, tail)
RELATIONS_FILE = "peoples_daily_relations.tsv"

# ---------------------------------------------------------------------------------------------
# Data: entity spans and the book's relation set
# ---------------------------------------------------------------------------------------------


def entity_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entities of a BIO tag sequence as ``(start, end, type)``, end exclusive.

    A stray ``I-X`` (after ``O`` or another type) starts a new entity, as seqeval does.
    """
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tags):
        if tags[i] == "O":
            i += 1
            continue
        kind = tags[i][2:]
        j = i + 1
        while j < len(tags) and tags[j] == f"I-{kind}":
            j += 1
        spans.append((i, j, kind))
        i = j
    return spans


def load_relation_examples(
    cache_dir: str | os.PathLike | None = None,
    corpus: Sequence[tuple[list[str], list[str]]] | None = None,
) -> list[dict]:
    """The book's small illustrative relation set: 200 hand-labelled entity pairs.

    Each pair is a person with a place or an organisation in one People's Daily sentence (see the
    header of ``data_files/peoples_daily_relations.tsv`` for how they were drawn and what each
    relation means). The sentences come from ``corpora_zh.peoples_daily_ner``.

    Args:
        cache_dir: the cache of ``peoples_daily_ner``.
        corpus: the result of ``peoples_daily_ner()`` if already loaded (saves reading it).

    Returns:
        ``[{"sentence": int, "chars": [str], "e1": (start, end, type), "e2": (...),
        "relation": str}, ...]`` in file order.
    """
    from llmbook_utils.corpora_zh import peoples_daily_ner

    corpus = peoples_daily_ner(cache_dir) if corpus is None else corpus
    text = (
        resources.files("llmbook_utils").joinpath("data_files", RELATIONS_FILE).read_text("utf-8")
    )
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    examples = []
    for line in lines[1:]:  # lines[0] is the header
        sentence, s1, e1, s2, e2, relation = line.split("\t")
        chars, tags = corpus[int(sentence)]
        spans = []
        for start, end in ((int(s1), int(e1)), (int(s2), int(e2))):
            if not tags[start].startswith("B-"):
                raise ValueError(f"sentence {sentence}: no entity starts at {start}")
            spans.append((start, end, tags[start][2:]))
        examples.append(
            {"sentence": int(sentence), "chars": chars, "e1": spans[0], "e2": spans[1],
             "relation": relation}
        )  # fmt: skip
    return examples


# ---------------------------------------------------------------------------------------------
# The graph and multi-hop queries
# ---------------------------------------------------------------------------------------------


def build_graph(triples: Iterable[Triple]):
    """A ``networkx.MultiDiGraph`` with one edge ``head -> tail`` per triple (``relation=...``)."""
    import networkx as nx

    graph = nx.MultiDiGraph()
    for head, relation, tail in triples:
        graph.add_edge(head, tail, relation=relation)
    return graph


def follow_path(graph, start: str, relations: Sequence[str]) -> set[str]:
    """Entities reached from ``start`` by following ``relations`` in order (a multi-hop query).

    A relation name prefixed with ``~`` follows the edge backwards (tail to head), so
    ``follow_path(g, "美国", ["~holds_post", "located_in"])`` gives the places where people who
    hold a post of 美国 were placed.

    Returns:
        The set of entities at the end of some matching path (empty if none).
    """
    frontier = {start} if start in graph else set()
    for relation in relations:
        backwards = relation.startswith("~")
        name = relation.lstrip("~")
        step: set[str] = set()
        for node in frontier:
            edges = (
                graph.in_edges(node, data="relation")
                if backwards
                else graph.out_edges(node, data="relation")
            )
            for head, tail, rel in edges:
                if rel == name:
                    step.add(head if backwards else tail)
        frontier = step
    return frontier


# ---------------------------------------------------------------------------------------------
# TransE
# ---------------------------------------------------------------------------------------------


@dataclass
class TripleIndex:
    """Integer ids of the entities and relations of a set of triples."""

    entities: list[str]
    relations: list[str]

    @classmethod
    def from_triples(cls, triples: Iterable[Triple]) -> TripleIndex:
        triples = list(triples)
        entities = sorted({h for h, _, _ in triples} | {t for _, _, t in triples})
        return cls(entities, sorted({r for _, r, _ in triples}))

    def encode(self, triples: Iterable[Triple]) -> Tensor:
        """(N, 3) long tensor of ``(head id, relation id, tail id)``."""
        ent = {e: i for i, e in enumerate(self.entities)}
        rel = {r: i for i, r in enumerate(self.relations)}
        rows = [(ent[h], rel[r], ent[t]) for h, r, t in triples]
        return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)


@dataclass
class TransEConfig:
    """Sizes and loss of a ``TransE`` model."""

    num_entities: int  # E
    num_relations: int  # R
    dim: int = 50  # D, embedding size of entities and relations
    margin: float = 1.0  # gamma of the margin loss
    p: int = 1  # the norm of the distance: 1 (L1) or 2 (L2)

    def __post_init__(self) -> None:
        if min(self.num_entities, self.num_relations, self.dim) < 1:
            raise ValueError(
                f"num_entities={self.num_entities}, num_relations={self.num_relations}, "
                f"dim={self.dim}: all must be positive"
            )
        if self.p not in (1, 2) or self.margin <= 0:
            raise ValueError(f"p={self.p}, margin={self.margin}: need p in (1, 2) and margin > 0")


class TransE(nn.Module):
    """Entities and relations as vectors, a true triple as ``e_h + r ~= e_t``.

    Initialisation as in the paper: uniform in ``[-6/sqrt(D), 6/sqrt(D)]``, relations then
    normalised once; entities are normalised before every step (``normalize_entities_``).
    """

    def __init__(self, config: TransEConfig) -> None:
        super().__init__()
        self.config = config
        bound = 6 / config.dim**0.5
        self.ent_emb = nn.Embedding(config.num_entities, config.dim)  # (E, D)
        self.rel_emb = nn.Embedding(config.num_relations, config.dim)  # (R, D)
        nn.init.uniform_(self.ent_emb.weight, -bound, bound)
        nn.init.uniform_(self.rel_emb.weight, -bound, bound)
        with torch.no_grad():
            self.rel_emb.weight.copy_(F.normalize(self.rel_emb.weight, dim=1))

    def score(self, triples: Tensor) -> Tensor:
        """(N,) scores ``-||e_h + r - e_t||_p`` of triples (N, 3); higher means more plausible."""
        h, r, t = (self.ent_emb(triples[:, 0]), self.rel_emb(triples[:, 1]),
                   self.ent_emb(triples[:, 2]))  # fmt: skip
        return -torch.linalg.vector_norm(h + r - t, ord=self.config.p, dim=-1)

    def score_tails(self, heads: Tensor, relations: Tensor) -> Tensor:
        """(B, E) scores of every entity as the tail of ``(head, relation, ?)``."""
        query = self.ent_emb(heads) + self.rel_emb(relations)  # (B, D)
        return -torch.cdist(query, self.ent_emb.weight, p=self.config.p)  # (B, E)

    def score_heads(self, relations: Tensor, tails: Tensor) -> Tensor:
        """(B, E) scores of every entity as the head of ``(?, relation, tail)``."""
        query = self.ent_emb(tails) - self.rel_emb(relations)  # (B, D): e_h should be e_t - r
        return -torch.cdist(query, self.ent_emb.weight, p=self.config.p)  # (B, E)

    def margin_loss(self, positive: Tensor, negative: Tensor) -> Tensor:
        """Mean of ``max(0, gamma - score(pos) + score(neg))`` over pairs (B, 3), (B, 3)."""
        return F.relu(self.config.margin - self.score(positive) + self.score(negative)).mean()

    @torch.no_grad()
    def normalize_entities_(self) -> None:
        """Project every entity vector onto the unit sphere (the paper does so every step)."""
        self.ent_emb.weight.copy_(F.normalize(self.ent_emb.weight, dim=1))


def corrupt(triples: Tensor, num_entities: int, generator: torch.Generator) -> Tensor:
    """Copies of triples (N, 3) with the head or the tail (each with probability 1/2) replaced
    by a uniformly random entity."""
    out = triples.clone()
    n = triples.shape[0]
    random_entities = torch.randint(num_entities, (n,), generator=generator)
    replace_head = torch.rand(n, generator=generator) < 0.5
    out[replace_head, 0] = random_entities[replace_head]
    out[~replace_head, 2] = random_entities[~replace_head]
    return out


def train_transe(
    model: TransE, triples: Tensor, steps: int, batch_size: int = 256, lr: float = 0.01,
    seed: int = 0,
) -> list[float]:  # fmt: skip
    """Train with SGD-style minibatches of true triples and one corruption each (Adam here).

    Returns:
        The loss of every step.
    """
    if steps < 0 or batch_size < 1 or triples.shape[0] == 0:
        raise ValueError(f"steps={steps}, batch_size={batch_size}, {len(triples)} triples")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        model.normalize_entities_()
        batch = triples[torch.randint(triples.shape[0], (batch_size,), generator=generator)]
        loss = model.margin_loss(batch, corrupt(batch, model.config.num_entities, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.normalize_entities_()
    return losses


# ---------------------------------------------------------------------------------------------
# Ranking metrics
# ---------------------------------------------------------------------------------------------


def filtered_ranks(scores: Tensor, targets: Tensor, known: Sequence[Iterable[int]]) -> Tensor:
    """The filtered rank of each target among all candidates.

    rank = 1 + the number of candidates scoring strictly higher than the target, not counting the
    candidates in ``known[i]`` (the other correct answers of query i, which are not errors).

    Args:
        scores: (B, E) score of every candidate per query, higher is better.
        targets: (B,) the index of the answer being ranked.
        known: for each query, the candidates that also make a true triple (may include the
            target itself; it is never filtered).

    Returns:
        (B,) long ranks, 1 is best.
    """
    if scores.dim() != 2 or targets.shape != (scores.shape[0],) or len(known) != len(targets):
        raise ValueError(
            f"scores {tuple(scores.shape)}, targets {tuple(targets.shape)}, {len(known)} known "
            "sets: expected (B, E), (B,) and B sets"
        )
    scores = scores.clone()
    target_scores = scores.gather(1, targets.unsqueeze(1))  # (B, 1)
    for i, others in enumerate(known):
        others = [k for k in others if k != int(targets[i])]
        if others:
            scores[i, others] = float("-inf")
    return 1 + (scores > target_scores).sum(1)


def hits_at_k(ranks: Tensor, k: int) -> float:
    """Share of ranks <= k."""
    if k < 1 or ranks.numel() == 0:
        raise ValueError(f"k={k}, {ranks.numel()} ranks: need k >= 1 and at least one rank")
    return float((ranks <= k).float().mean())


def mean_reciprocal_rank(ranks: Tensor) -> float:
    """Mean of 1 / rank."""
    if ranks.numel() == 0:
        raise ValueError("no ranks")
    return float((1.0 / ranks.float()).mean())


@torch.no_grad()
def link_prediction_ranks(model: TransE, test: Tensor, known: Tensor) -> Tensor:
    """Filtered ranks of the true tail and the true head of every test triple.

    Args:
        model: a trained ``TransE``.
        test: (N, 3) triples to rank.
        known: (M, 3) every true triple (train and test) used for filtering.

    Returns:
        (2N,) ranks: the N tail predictions, then the N head predictions.
    """
    tails_of: dict[tuple[int, int], set[int]] = {}
    heads_of: dict[tuple[int, int], set[int]] = {}
    for h, r, t in known.tolist():
        tails_of.setdefault((h, r), set()).add(t)
        heads_of.setdefault((r, t), set()).add(h)
    h, r, t = test[:, 0], test[:, 1], test[:, 2]
    tail_known = [tails_of.get((a, b), set()) for a, b in zip(h.tolist(), r.tolist(), strict=True)]
    head_known = [heads_of.get((b, c), set()) for b, c in zip(r.tolist(), t.tolist(), strict=True)]
    tail_ranks = filtered_ranks(model.score_tails(h, r), t, tail_known)
    head_ranks = filtered_ranks(model.score_heads(r, t), h, head_known)
    return torch.cat([tail_ranks, head_ranks])
