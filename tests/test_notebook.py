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
