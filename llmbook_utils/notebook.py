"""Small helpers for the chapters themselves: quoting results in the prose.

``glue`` records a value computed in a cell under a name, so the text of the chapter can quote
it (MyST-NB's ``{glue:text}`name:.2f``` role): numbers in the prose then always come from the
executed cells. It writes the same output format as ``myst_nb.glue`` without importing MyST-NB,
so chapters run unchanged in Colab, where MyST-NB is not installed. ``make bench`` reads the
same records back from executed chapters with ``read_glued``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` under ``name`` for the chapter's text.

    Args:
        name: a unique identifier, used in the prose as ``{glue:text}`name```.
        value: the object; its rich display (e.g. ``text/plain``) is stored. NumPy and
            PyTorch scalars are stored as Python numbers, so that a format such as ``:.2f``
            in the prose applies to them (their ``repr`` is ``np.float64(0.5)``).
        display: also show the value as the cell's output.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # a NumPy or PyTorch scalar -> a Python number
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    bundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + key: data for key, data in bundle.items()}, raw=True, metadata=metadata)


def read_glued(path: str | Path) -> dict[str, str]:
    """Return the ``text/plain`` form of every value glued in an executed notebook.

    The records are read from the notebook's outputs and, where MyST-NB built the page, from
    the ``<name>.glue.json`` it writes beside its copy of the notebook after moving the records
    out of the outputs (``jupyter-book build``'s ``_build/jupyter_execute``).
    """
    import json

    import nbformat

    path = Path(path)
    outputs = [
        output
        for cell in nbformat.read(path, as_version=4).cells
        for output in cell.get("outputs", [])
    ]
    sidecar = path.with_suffix(".glue.json")
    if sidecar.exists():
        outputs += json.loads(sidecar.read_text()).values()
    values: dict[str, str] = {}
    for output in outputs:
        record = output.get("metadata", {}).get("scrapbook")
        if record is None:
            continue
        data = output.get("data", {})
        text = data.get(record.get("mime_prefix", "") + "text/plain", data.get("text/plain"))
        if text is not None:
            values[record["name"]] = text
    return values
