"""Knowledge-graph helpers against hand computations and networkx's own traversal."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from seqeval.metrics.sequence_labeling import get_entities

from llmbook_utils.kg import (
    TransE,
    TransEConfig,
    TripleIndex,
    build_graph,
    corrupt,
    entity_spans,
    filtered_ranks,
    follow_path,
    hits_at_k,
    link_prediction_ranks,
    mean_reciprocal_rank,
    train_transe,
)

TOY = [
    ("alice", "works_for", "acme"),
    ("bob", "works_for", "acme"),
    ("carol", "works_for", "globex"),
    ("acme", "located_in", "paris"),
    ("globex", "located_in", "rome"),
    ("alice", "born_in", "rome"),
]


def test_entity_spans_equal_seqeval():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "B-ORG", "I-ORG", "O", "B-LOC"]
    want = [(start, end + 1, kind) for kind, start, end in get_entities(tags)]
    assert entity_spans(tags) == sorted(want)


def test_hits_and_mrr_by_hand():
    ranks = torch.tensor([1, 3, 12, 2, 50])
    assert hits_at_k(ranks, 1) == pytest.approx(1 / 5)
    assert hits_at_k(ranks, 10) == pytest.approx(3 / 5)
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 3 + 1 / 12 + 1 / 2 + 1 / 50) / 5)


def test_filtered_ranks_by_hand():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.7, 0.3], [0.2, 0.8, 0.6, 0.4, 0.0]])
    targets = torch.tensor([2, 3])
    # raw: query 0 has 0.9 and 0.7 above 0.5 -> rank 3; query 1 has 0.8 and 0.6 above 0.4 -> 3
    raw = filtered_ranks(scores, targets, [set(), set()])
    assert raw.tolist() == [3, 3]
    # filtering candidate 0 (another true answer) of query 0 and candidate 1 of query 1
    filtered = filtered_ranks(scores, targets, [{0, 2}, {1}])
    assert filtered.tolist() == [2, 2]


def test_transe_score_is_the_negative_distance():
    torch.manual_seed(0)
    for p in (1, 2):
        model = TransE(TransEConfig(num_entities=5, num_relations=2, dim=4, p=p))
        triples = torch.tensor([[0, 1, 3], [4, 0, 2]])
        e, r = model.ent_emb.weight, model.rel_emb.weight
        want = torch.stack([
            -(e[h] + r[rel] - e[t]).abs().pow(p).sum().pow(1 / p) for h, rel, t in triples.tolist()
        ])  # fmt: skip
        torch.testing.assert_close(model.score(triples), want)
        all_tails = model.score_tails(triples[:, 0], triples[:, 1])  # (2, 5)
        all_heads = model.score_heads(triples[:, 1], triples[:, 2])  # (2, 5)
        torch.testing.assert_close(all_tails[[0, 1], triples[:, 2]], want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(all_heads[[0, 1], triples[:, 0]], want, atol=1e-5, rtol=1e-5)


def test_margin_loss_formula():
    torch.manual_seed(0)
    model = TransE(TransEConfig(num_entities=6, num_relations=1, dim=3, margin=2.0))
    pos, neg = torch.tensor([[0, 0, 1], [2, 0, 3]]), torch.tensor([[0, 0, 5], [4, 0, 3]])
    want = torch.clamp(2.0 - model.score(pos) + model.score(neg), min=0).mean()
    torch.testing.assert_close(model.margin_loss(pos, neg), want)


def test_corrupt_changes_exactly_one_end():
    triples = torch.tensor([[0, 0, 1]] * 200)
    bad = corrupt(triples, 1000, torch.Generator().manual_seed(0))
    changed = (bad != triples).sum(1)
    assert (changed <= 1).all() and (bad[:, 1] == 0).all()


def test_multi_hop_equals_networkx_traversal():
    graph = build_graph(TOY)
    # two hops along any relation, from networkx's own breadth-first search
    two_hops = nx.descendants_at_distance(nx.DiGraph(graph), "alice", 2)
    assert follow_path(graph, "alice", ["works_for", "located_in"]) == two_hops == {"paris"}
    # a relation path: the edges networkx lists on the simple paths with matching relations
    want = set()
    for path in nx.all_simple_edge_paths(graph, "bob", "paris"):
        if [graph.edges[e]["relation"] for e in path] == ["works_for", "located_in"]:
            want.add(path[-1][1])
    assert follow_path(graph, "bob", ["works_for", "located_in"]) == want == {"paris"}
    # backwards: who works for a company located in paris
    workers = {u for u, v, r in graph.edges(data="relation") if r == "works_for" and v == "acme"}
    assert follow_path(graph, "paris", ["~located_in", "~works_for"]) == workers
    assert follow_path(graph, "nobody", ["works_for"]) == set()


def test_transe_learns_a_toy_graph_better_than_chance():
    # 20 people, each working for one of 4 companies; company c is located in city c
    triples = [(f"p{i}", "works_for", f"c{i % 4}") for i in range(20)]
    triples += [(f"c{c}", "located_in", f"city{c}") for c in range(4)]
    index = TripleIndex.from_triples(triples)
    encoded = index.encode(triples)
    test = encoded[:4]  # p0..p3 works_for c0..c3, also kept in training: a memorisation check
    torch.manual_seed(0)
    model = TransE(TransEConfig(len(index.entities), len(index.relations), dim=16, margin=1.0))
    losses = train_transe(model, encoded, steps=300, batch_size=32, lr=0.05, seed=0)
    assert losses[-1] < losses[0]
    ranks = link_prediction_ranks(model, test, encoded)
    assert ranks.shape == (8,)
    assert mean_reciprocal_rank(ranks[:4]) > 0.5  # tails: chance is about 1/len(entities)


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="dim=0"):
        TransEConfig(num_entities=3, num_relations=1, dim=0)
    with pytest.raises(ValueError, match="p=3"):
        TransEConfig(num_entities=3, num_relations=1, p=3)
    with pytest.raises(ValueError, match="k=0"):
        hits_at_k(torch.tensor([1]), 0)


def test_relation_set_pairs_are_entities_of_the_corpus():
    from llmbook_utils.kg import load_relation_examples

    examples = load_relation_examples()
    assert len(examples) == 200
    relations = {e["relation"] for e in examples}
    assert relations == {"holds_post", "works_for", "located_in", "origin", "none"}
    from llmbook_utils.corpora_zh import peoples_daily_ner

    corpus = peoples_daily_ner()
    for e in examples[:50]:
        chars, tags = corpus[e["sentence"]]
        found = {(start, end + 1, kind) for kind, start, end in get_entities(tags)}
        assert e["e1"] in found and e["e2"] in found
        assert "PER" in (e["e1"][2], e["e2"][2])
