"""glue() writes MyST-NB's record format, with NumPy and PyTorch scalars as plain numbers."""

from __future__ import annotations

import IPython.display
import nbformat
import numpy as np
import torch

from llmbook_utils.notebook import GLUE_PREFIX, glue, read_glued


def _glued_outputs(monkeypatch, *values) -> list[dict]:
    outputs = []

    def capture(obj, raw=False, metadata=None):
        outputs.append({"data": obj, "metadata": metadata})

    monkeypatch.setattr(IPython.display, "display", capture)
    for i, value in enumerate(values):
        glue(f"v{i}", value)
    return outputs


def test_scalars_are_stored_as_python_numbers(monkeypatch, tmp_path):
    values = (np.float64(0.25), torch.tensor(3), np.int64(7), 1.5, "text")
    outputs = _glued_outputs(monkeypatch, *values)
    texts = [out["data"][GLUE_PREFIX + "text/plain"] for out in outputs]
    assert texts == ["0.25", "3", "7", "1.5", "'text'"]
    assert outputs[0]["metadata"]["scrapbook"] == {"name": "v0", "mime_prefix": GLUE_PREFIX}

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=o["data"], metadata=o["metadata"])
        for o in outputs
    ]
    nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "run.ipynb")
    assert read_glued(tmp_path / "run.ipynb")["v0"] == "0.25"


def test_read_glued_finds_the_records_myst_nb_moved_beside_its_copy(monkeypatch, tmp_path):
    """MyST-NB's build moves glue records out of the outputs into ``<name>.glue.json``."""
    import json

    from myst_nb.ext.glue import extract_glue_data_cell

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=o["data"], metadata=o["metadata"])
        for o in _glued_outputs(monkeypatch, 0.25, 7)
    ]
    nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "run.ipynb")
    before = read_glued(tmp_path / "run.ipynb")
    moved = dict(extract_glue_data_cell(nb.cells[0]))  # what jupyter-book does to its copy
    nbformat.write(nb, tmp_path / "built.ipynb")
    (tmp_path / "built.glue.json").write_text(json.dumps(moved))
    assert before == {"v0": "0.25", "v1": "7"}
    assert read_glued(tmp_path / "built.ipynb") == before
