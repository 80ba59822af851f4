"""The website builds with warnings as errors and reads well in a real, offline browser.

The book is built once per session (executing every chapter in the active profile); then each
page is opened in headless Chromium, served from 127.0.0.1, and checked as a reader would see
it: no JavaScript errors, no request leaving the machine, every plotly figure drawn, display
math typeset, no empty widget. A screenshot of every chapter lands in ``_build/screenshots``.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import CHAPTERS, ROOT

pytestmark = pytest.mark.slow

BUILD_DIR = ROOT / "_build" / "test"
SCREENSHOTS = ROOT / "_build" / "screenshots"


@pytest.fixture(scope="session")
def site() -> Path:
    """Build the book from scratch (fresh execution cache) and return the html directory."""
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(ROOT), "--path-output", str(BUILD_DIR), "-W", "--keep-going"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if result.returncode != 0:
        pytest.fail(
            f"the book build failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n"
            f"{result.stderr[-6000:]}",
            pytrace=False,
        )
    return BUILD_DIR / "_build" / "html"


def test_book_builds_with_every_chapter(site):
    for path in CHAPTERS:
        page = site / "chapters" / f"{path.stem}.html"
        assert page.exists(), f"{page} was not built"
    assert (site / "_static" / "plotly.min.js").exists()
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists()


def _pages(site: Path) -> list[Path]:
    skip = {"genindex.html", "search.html"}
    pages = []
    for path in sorted(site.rglob("*.html")):
        if path.name in skip or "_static" in path.parts:
            continue
        if 'http-equiv="Refresh"' in path.read_text(errors="replace")[:2000]:
            continue  # the root index.html only redirects to the introduction
        pages.append(path)
    return pages


@pytest.fixture(scope="session")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


# Run after the page has loaded: waits for MathJax and for plotly to finish drawing.
PAGE_REPORT_JS = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const plots = [...document.querySelectorAll('.plotly-graph-div')];
  const drawn = p => p.querySelector('svg.main-svg') && p.getBoundingClientRect().height > 50;
  for (let i = 0; i < 100 && !plots.every(drawn); i++) {
    await new Promise(r => setTimeout(r, 100));
  }
  const math = [...document.querySelectorAll('div.math, .math.notranslate.nohighlight')];
  const widgets = [...document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"], .jupyter-widgets')];
  return {
    plots: plots.length,
    undrawn: plots.filter(p => !drawn(p)).map(p => p.id),
    math: math.length,
    untypeset: math.filter(m => !m.querySelector('mjx-container'))
      .map(m => m.textContent.slice(0, 60)),
    emptyWidgets: widgets.filter(w => !w.textContent.trim() && !w.children.length).length,
    widgetViews: document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]').length,
  };
}
"""


def test_pages_in_browser(site, server, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    chapter_stems = {p.stem for p in CHAPTERS}
    for path in _pages(site):
        rel = path.relative_to(site).as_posix()
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        outside: list[str] = []
        page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))

        def guard(route, outside=outside):
            host = urlparse(route.request.url).hostname
            if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        page.goto(f"{server}/{rel}", wait_until="load")
        report = page.evaluate(PAGE_REPORT_JS)
        if path.stem in chapter_stems:
            page.screenshot(path=str(SCREENSHOTS / f"{path.stem}.png"), full_page=True)
        page.close()

        if errors:
            problems.append(f"{rel}: JavaScript errors {errors[:5]}")
        if outside:
            problems.append(f"{rel}: requests leaving the machine {sorted(set(outside))[:5]}")
        if report["undrawn"]:
            problems.append(f"{rel}: plotly figures not drawn {report['undrawn']}")
        if report["untypeset"]:
            problems.append(f"{rel}: math not typeset {report['untypeset'][:3]}")
        if report["emptyWidgets"] or report["widgetViews"]:
            problems.append(f"{rel}: {report['widgetViews']} widget outputs with no live kernel")
        if path.stem in chapter_stems and report["plots"] == 0:
            problems.append(f"{rel}: a chapter page with no interactive figure")
    assert not problems, "\n".join(problems)
