"""Sphinx extension that keeps the book's website self-contained and its console clean.

- plotly.js is copied from the installed plotly package into ``_static`` and loaded by every
  page, so figures emitted by ``llmbook_utils.viz`` (HTML that calls the global ``Plotly``) draw
  without a network; MathJax comes from ``sphinx-mathjax-offline``.
- Thebe (live code on Binder) is off in this book, but its configuration script is still added
  twice by the theme stack, which throws "Identifier 'THEBE_JS_URL' has already been declared";
  it is removed from every page.
- The theme's colour mode defaults to light instead of an empty value the theme rejects.
- The Colab launch button opens the chapter's Colab edition (``book/_ext/colab_edition.py``,
  plain Markdown that Colab renders), which the book's workflow publishes at the same path on
  the branch ``colab_edition_branch`` (default ``colab``); the theme would open the MyST source
  on the repository's main branch.
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


def _colab_edition_url(app, pagename, templatename, context, doctree) -> None:
    """Point the Colab button at the Colab edition: ``.../blob/<branch>/`` -> ``.../blob/colab/``.

    Runs after sphinx-book-theme's ``add_launch_buttons`` (priority 501) has built the URL from
    ``repository.url``, ``repository.branch`` and the page's path.
    """
    branch = app.config.colab_edition_branch
    source_branch = app.config.html_theme_options.get("repository_branch") or "master"
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if branch and button.get("text") == "Colab":
                url = button["url"].replace(f"/blob/{source_branch}/", f"/blob/{branch}/", 1)
                button["url"] = url
                button["tooltip"] = "Launch the Colab edition (same code, plain Markdown)"


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
    app.add_config_value("colab_edition_branch", "colab", "html")
    app.connect("html-page-context", _colab_edition_url, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
