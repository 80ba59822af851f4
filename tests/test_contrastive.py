"""InfoNCE against sentence-transformers' MultipleNegativesRankingLoss; alignment, uniformity and
recall against their definitions written out; SimCSE's views differ only through dropout."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from llmbook_utils.bert import Bert, BertConfig
from llmbook_utils.contrastive import SimCSE, alignment, info_nce, recall_at_k, uniformity

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from sentence_transformers.losses import MultipleNegativesRankingLoss


@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0])
@pytest.mark.parametrize("n_extra", [0, 8])  # with and without hard negatives
def test_info_nce_equals_multiple_negatives_ranking_loss(temperature, n_extra):
    gen = torch.Generator().manual_seed(0)
    queries = torch.randn(8, 16, generator=gen, dtype=torch.float64)
    positives = queries + 0.5 * torch.randn(8, 16, generator=gen, dtype=torch.float64)
    columns = [queries, positives]
    if n_extra:
        columns.append(torch.randn(n_extra, 16, generator=gen, dtype=torch.float64))
    reference = MultipleNegativesRankingLoss(model=None, scale=1.0 / temperature)
    expected = reference.compute_loss_from_embeddings(columns, labels=None)
    ours = info_nce(queries, torch.cat(columns[1:]), temperature)
    assert abs(ours.item() - expected.item()) < 1e-6
    # float32, as in training, agrees to float32 rounding
    ours32 = info_nce(queries.float(), torch.cat(columns[1:]).float(), temperature)
    assert abs(ours32.item() - expected.item()) < 1e-5 * max(1.0, expected.item())


def test_info_nce_formula_and_gradient():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    tau = 0.2
    s = [[F.cosine_similarity(q[i], k[j], dim=0) / tau for j in range(5)] for i in range(5)]
    expected = sum(-s[i][i] + torch.logsumexp(torch.stack(s[i]), 0) for i in range(5)) / 5
    ours = info_nce(q, k, tau)
    torch.testing.assert_close(ours, expected)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, tau), (q, k))
    # Perfect, well-separated pairs: the loss tends to 0 as tau -> 0; identical keys: ln B
    eye = torch.eye(5, dtype=torch.float64)
    assert info_nce(eye, eye, 0.01).item() < 1e-30
    assert math.isclose(info_nce(eye, torch.ones(5, 5, dtype=torch.float64)).item(), math.log(5))


def test_info_nce_rejects_bad_input():
    with pytest.raises(ValueError, match="share C"):
        info_nce(torch.randn(4, 8), torch.randn(4, 9))
    with pytest.raises(ValueError, match="M=3"):
        info_nce(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(torch.randn(4, 8), torch.randn(4, 8), temperature=0.0)


def test_alignment_and_uniformity_match_their_definitions():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
    y = x + 0.3 * torch.randn(12, 6, generator=gen, dtype=torch.float64)
    xn, yn = F.normalize(x, dim=1), F.normalize(y, dim=1)
    # Wang and Isola (2020), written with explicit loops over pairs
    align = sum(float(((xn[i] - yn[i]) ** 2).sum()) for i in range(12)) / 12
    pairs = list(itertools.combinations(range(12), 2))
    unif = math.log(
        sum(math.exp(-2 * float(((xn[i] - xn[j]) ** 2).sum())) for i, j in pairs) / len(pairs)
    )
    assert math.isclose(alignment(x, y).item(), align, rel_tol=1e-12)
    assert math.isclose(uniformity(x).item(), unif, rel_tol=1e-12)
    # alpha = 1: mean distance; identical embeddings: alignment 0, uniformity 0 (the maximum)
    dist = sum(float((xn[i] - yn[i]).norm()) for i in range(12)) / 12
    assert math.isclose(alignment(x, y, alpha=1.0).item(), dist, rel_tol=1e-12)
    same = torch.ones(4, 3)
    assert alignment(same, same).item() == 0.0 and abs(uniformity(same).item()) < 1e-6
    # Equally spaced points on the circle: the mean over all ordered pairs (self-pairs
    # included) is the uniform limit E exp(-2|x-y|^2) = e^-4 I_0(4) (a modified Bessel
    # function, I_0(4) = 11.301921952136...); without the N self-pairs it is (N E - 1)/(N - 1).
    n = 2000
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    circle = torch.stack([angles.cos(), angles.sin()], dim=1)
    limit = math.exp(-4) * 11.301921952136330
    assert math.isclose(
        uniformity(circle).item(), math.log((n * limit - 1) / (n - 1)), rel_tol=1e-9
    )


def test_recall_at_k_with_several_correct_candidates():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    candidates = torch.tensor([[1.0, 0.1], [0.1, 1.0], [-1.0, 0.0]])
    gold = [[0], [2], [1, 2]]  # query 0 right, query 1 wrong, query 2: top-1 is 0 or 1
    top1 = (F.normalize(queries, dim=1) @ F.normalize(candidates, dim=1).T).argmax(1).tolist()
    expected = sum(t in g for t, g in zip(top1, gold, strict=True)) / 3
    assert recall_at_k(queries, candidates, gold, k=1) == expected
    assert recall_at_k(queries, candidates, gold, k=3) == 1.0
    with pytest.raises(ValueError, match="len\\(gold\\)"):
        recall_at_k(queries, candidates, gold[:2])
    with pytest.raises(ValueError, match="k=4"):
        recall_at_k(queries, candidates, gold, k=4)


def test_simcse_views_differ_by_dropout_only(one_thread):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, context_length=16, d_model=32, n_layers=2, n_heads=2, d_ff=64, dropout=0.1
    )
    model = SimCSE(Bert(config), temperature=0.05)
    ids = torch.randint(5, 50, (6, 10))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    _, loss = model(ids, mask)
    # the same loss from two separate passes with the same dropout masks (same RNG state)
    torch.manual_seed(1)
    _, loss_a = model(ids, mask)
    torch.manual_seed(1)
    z = model.embed(torch.cat([ids, ids]), torch.cat([mask, mask]))
    torch.testing.assert_close(loss_a, info_nce(z[:6], z[6:], 0.05))
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.layers.parameters())
    # without dropout the two views coincide, and the loss is InfoNCE of identical pairs
    model.eval()
    with torch.no_grad():
        z = model.embed(ids, mask)
        _, eval_loss = model(ids, mask)
    torch.testing.assert_close(eval_loss, info_nce(z, z, 0.05))
    with pytest.raises(ValueError, match="temperature"):
        SimCSE(Bert(config), temperature=-1.0)
