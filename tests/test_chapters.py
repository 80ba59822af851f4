"""Every chapter executes end to end in the active profile (smoke under `make test`)."""

from __future__ import annotations

import time

import nbformat
import pytest
from conftest import CHAPTER_TIMES, CHAPTERS
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.slow


def _failing_cell(nb: nbformat.NotebookNode) -> str:
    for index, cell in enumerate(nb.cells, 1):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            return f"cell {index} ({first_line!r})"
    return "an unknown cell"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_executes(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name}: {_failing_cell(nb)} raised:\n{err}", pytrace=False)
    finally:
        CHAPTER_TIMES[path.name] = time.perf_counter() - start
