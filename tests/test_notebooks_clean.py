"""Chapters are stored without outputs, with clean metadata and the book's first cell."""

from __future__ import annotations

import re

import nbformat
import pytest
import yaml
from conftest import CHAPTERS, ROOT

ALLOWED_METADATA = {"kernelspec", "language_info", "jupytext"}


def test_there_are_chapters():
    assert CHAPTERS, "no chapters found in chapters/"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_outputs_and_clean_metadata(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells, 1):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {index} has stored outputs"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"
        extra = set(cell.metadata) - {"tags"}
        assert not extra, f"{path.name} cell {index} has metadata {sorted(extra)}"
    assert set(nb.metadata) <= ALLOWED_METADATA, f"{path.name}: metadata {sorted(nb.metadata)}"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_first_cell_installs_from_the_book_repository(path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"]
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "code", f"{path.name}: the first cell must be the set-up cell"
    found = re.search(r'REPOSITORY = "([^"]+)"', first.source)
    assert found, f"{path.name}: the first cell does not name the repository"
    assert found.group(1) == url, (
        f"{path.name}: installs from {found.group(1)}, _config.yml has {url}"
    )
    assert "google.colab" in first.source and "describe()" in first.source


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        for value in node.values():
            files += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            files += _toc_files(item)
    return files


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = [toc["root"], *_toc_files(toc["parts"])]
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry
    for path in CHAPTERS:
        assert f"chapters/{path.stem}" in listed, f"{path.name} is not in _toc.yml"


def _term_rows(markdown: str) -> list[tuple[str, str]]:
    """The (English, 中文) pairs of a markdown table, header and rule excluded."""
    rows = []
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) >= 2 and not set(cells[0]) <= set("-: "):
            rows.append((cells[0], cells[1]))
    return rows[1:] if rows and rows[0][0] == "English" else rows


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_key_terms_are_in_the_glossary(path):
    cells = nbformat.read(path, as_version=4).cells
    key_terms = [
        c.source for c in cells if c.cell_type == "markdown" and "## Key terms" in c.source
    ]
    assert key_terms, f"{path.name} has no key-terms table"
    section = key_terms[0].split("## Key terms", 1)[1].split("\n## ", 1)[0]
    terms = _term_rows(section)
    assert terms, f"{path.name}: the key-terms table is empty"
    glossary = dict(_term_rows((ROOT / "book" / "glossary.md").read_text()))
    for english, chinese in terms:
        assert english in glossary, f"{path.name}: {english!r} is missing from book/glossary.md"
        assert glossary[english] == chinese, (
            f"{path.name}: {english!r} is {chinese!r}, the glossary has {glossary[english]!r}"
        )
