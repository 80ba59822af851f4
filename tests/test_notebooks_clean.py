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
