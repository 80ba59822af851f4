"""How the book's figures look and where they render: the site renderer and shared styling.

Static mode: when the environment variable ``LLMBOOK_STATIC=1`` is set (the book build and the
tests execute notebooks this way), ``use_book_renderer()`` makes the ``"llmbook_static"``
renderer plotly's default. It emits only a ``text/html`` snippet that calls ``Plotly.newPlot``
on the global ``window.Plotly`` that the website loads from ``_static`` (no require.js, no
CDN). Otherwise plotly's own default renderer is kept, which detects JupyterLab, Colab and
VS Code. Setting up the renderer is an explicit call, made by every chapter's first cell::

    from llmbook_utils.viz import use_book_renderer
    use_book_renderer()

Importing a module never changes plotly's renderer. The helpers below (token labels, ticks, the
template) keep every figure module of the book looking the same.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer

STATIC_RENDERER = "llmbook_static"
TEMPLATE = "plotly_white"


def is_static() -> bool:
    """True when notebooks run for the website (``LLMBOOK_STATIC=1``), with no live front end."""
    return os.environ.get("LLMBOOK_STATIC") == "1"


@contextmanager
def no_progress_bars_when_static() -> Iterator[None]:
    """Silence ``transformers``' tqdm bars while the website is built (``LLMBOOK_STATIC=1``).

    In a notebook, tqdm draws an ipywidget, and the static site shows no widgets (``train``
    hides its bar there too). This covers ``from_pretrained``'s bars and the GGUF converter's,
    which calls tqdm directly. Outside static mode nothing changes.
    """
    if not is_static():
        yield
        return
    from transformers.utils import logging as hf_logging

    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # an older transformers without GGUF support
        gguf_utils = None
    was_enabled = hf_logging.is_progress_bar_enabled()
    saved_tqdm = getattr(gguf_utils, "tqdm", None)
    hf_logging.disable_progress_bar()
    if saved_tqdm is not None:
        gguf_utils.tqdm = functools.partial(saved_tqdm, disable=True)
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
        if saved_tqdm is not None:
            gguf_utils.tqdm = saved_tqdm


class BookHtmlRenderer(MimetypeRenderer):
    """Renders a figure as an HTML ``<div>`` plus a ``Plotly.newPlot`` call, and nothing else.

    The website loads plotly.js once as a global; MyST-NB drops plotly's default JSON mime type,
    and plotly's ``notebook`` renderers bring require.js, which hijacks that global.
    """

    def to_mimebundle(self, fig_dict: dict) -> dict[str, str]:
        html = pio.to_html(
            fig_dict,
            include_plotlyjs=False,
            full_html=False,
            config={"responsive": True, "displaylogo": False},
            default_height=500,  # used only by figures that set no height of their own
            validate=False,
        )
        return {"text/html": html}


def use_book_renderer(make_default: bool | None = None) -> None:
    """Register the ``"llmbook_static"`` renderer and, in static mode, make it plotly's default.

    Call it once, in a notebook's first cell; calling it again is harmless.

    Args:
        make_default: ``True`` makes it plotly's default renderer, ``False`` leaves the default
            alone, ``None`` (the default) does the first exactly when ``LLMBOOK_STATIC=1``.
    """
    pio.renderers[STATIC_RENDERER] = BookHtmlRenderer()
    if make_default or (make_default is None and is_static()):
        pio.renderers.default = STATIC_RENDERER


def as_numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of a numpy array, a torch tensor (any device) or a nested list."""
    if hasattr(x, "detach"):  # a torch tensor; duck-typed so this module needs no torch import
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def token_label(token: str) -> str:
    """A token as a readable, HTML-safe tick label (plotly parses tick text as HTML)."""
    text = str(token).replace("\n", "\\n").replace("\t", "\\t")
    if text.strip() == "":
        text = "\u2423" * max(len(text), 1)  # visible space for whitespace-only or empty tokens
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def tick_labels(labels: list[str]) -> dict[str, Any]:
    """Axis settings that put ``labels`` at positions 0, 1, ... (a repeated token stays apart)."""
    return {"tickmode": "array", "tickvals": list(range(len(labels))), "ticktext": labels}


def styled(fig: go.Figure, title: str, height: int = 450) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.5}, template=TEMPLATE, height=height)
    return fig
