"""Sphinx extension that keeps the book's website self-contained and its console clean.

- plotly.js is copied from the installed plotly package into ``_static`` and loaded by every
  page, so figures emitted by ``llmbook_utils.viz`` (HTML that calls the global ``Plotly``) draw
  without a network; MathJax comes from ``sphinx-mathjax-offline``.
- Thebe (live code on Binder) is off in this book, but its configuration script is still added
  twice by the theme stack, which throws "Identifier 'THEBE_JS_URL' has already been declared";
  it is removed from every page.
- The theme's colour mode defaults to light instead of an empty value the theme rejects.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import plotly
from sphinx.application import Sphinx
from sphinx.config import Config

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _set_theme_defaults(app: Sphinx, config: Config) -> None:
    config.html_context.setdefault("default_mode", "light")


def _drop_thebe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [
            s
            for s in scripts
            if "THEBE_JS_URL" not in str(getattr(s, "attributes", {}).get("body", ""))
            and "sphinx-thebe" not in str(s)
        ]


def _copy_plotly(app: Sphinx, exc: Exception | None) -> None:
    if exc is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PLOTLY_JS, static / "plotly.min.js")


def setup(app: Sphinx) -> dict:
    # Loaded in <head> without defer, so it exists before the figures' inline scripts run.
    app.add_js_file("plotly.min.js", priority=100)
    app.connect("config-inited", _set_theme_defaults)
    app.connect("html-page-context", _drop_thebe_scripts, priority=900)
    app.connect("build-finished", _copy_plotly)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
