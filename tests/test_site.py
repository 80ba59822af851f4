"""The website builds with warnings as errors and reads well in a real, offline browser.

The book is built once per session, from the chapters that tests/test_chapters.py executed (or,
run alone, executing them itself); then each page is opened in headless Chromium, served from
127.0.0.1, and checked as a reader would see it: no JavaScript errors, no request leaving the
machine, every plotly figure drawn, display math typeset, no empty widget, Chinese characters
drawn with a CJK font, the Colab button on the Colab edition. Screenshots of every chapter and
of the glossary land in ``_build/screenshots``.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from conftest import CHAPTER_TIMES, CHAPTERS, ROOT
from conftest import EXECUTED_CHAPTERS as EXECUTED

pytestmark = pytest.mark.slow

BUILD_DIR = ROOT / "_build" / "test"
SCREENSHOTS = ROOT / "_build" / "screenshots"


def _source_with_executed_chapters(work: Path) -> Path | None:
    """A copy of the book's sources whose chapters are this session's executed notebooks
    (tests/test_chapters.py ran them in the fresh venv), set to build without executing.

    None when some chapter was not executed in this session: the build then executes them.
    """
    executed = [EXECUTED / path.name for path in CHAPTERS]
    if not all(p.name in CHAPTER_TIMES and p.exists() for p in executed):
        return None
    source = work / "book-source"
    shutil.copytree(
        ROOT, source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "_build", "*.egg-info", ".pytest_cache", ".ruff_cache", "_runs",
            "__pycache__", ".ipynb_checkpoints",
        ),
    )  # fmt: skip
    for path in executed:
        shutil.copy2(path, source / "chapters" / path.name)
    config = yaml.safe_load((source / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (source / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return source


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """Build the book (-W) and return the html directory.

    The chapters execute once per test session: when tests/test_chapters.py has run them (in
    the fresh venv, same profile), the site is built from those notebooks; otherwise the build
    executes them itself, with a fresh execution cache.
    """
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    source = _source_with_executed_chapters(tmp_path_factory.mktemp("site")) or ROOT
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(source), "--path-output", str(BUILD_DIR), "-W", "--keep-going"]
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


def test_colab_button_opens_the_colab_edition(site):
    """Every chapter's Colab button opens its Colab edition: same path, on the colab branch."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/").strip("/")
    branch = config["sphinx"]["config"]["colab_edition_branch"]
    for path in CHAPTERS:
        html = (site / "chapters" / f"{path.stem}.html").read_text()
        links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', html))
        expected = (
            f"https://colab.research.google.com/github/{repo}/blob/{branch}/chapters/{path.name}"
        )
        assert links == {expected}, f"{path.name}: Colab links {links}, expected {expected}"


def test_equation_numbers_match_the_colab_edition(site):
    """The Colab edition's \\tag{N} and "(N)" use the website's equation numbers."""
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import colab_edition

    expected = colab_edition.book_equation_numbers(ROOT)
    found = {}
    for page in site.rglob("*.html"):
        for m in re.finditer(
            r'id="equation-([^"]+)">\s*<span class="eqno">\(([\d.]+)\)', page.read_text()
        ):
            found[m.group(1)] = m.group(2)
    assert found, "no numbered equations on the website"
    assert {label: str(n) for label, n in expected.items()} == found


# Draws two different CJK characters in the page's font: with no CJK font both are the same
# missing-glyph box (identical pixels), with one they differ; blank means nothing was drawn.
CJK_GLYPHS_JS = """
(selector) => {
  const cell = [...document.querySelectorAll(selector)]
    .find(e => /[\\u4e00-\\u9fff]/.test(e.textContent));
  if (!cell) return {found: false};
  const font = getComputedStyle(cell).font;
  const draw = ch => {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 64;
    const ctx = canvas.getContext('2d');
    ctx.font = font.replace(/\\d+(\\.\\d+)?px/, '48px');
    ctx.fillStyle = '#000';
    ctx.textBaseline = 'top';
    ctx.fillText(ch, 4, 4);
    return Array.from(ctx.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 3));
  };
  const a = draw('中'), b = draw('文');
  return {found: true, text: cell.textContent.trim().slice(0, 20), font,
          inked: a.some(v => v > 0) && b.some(v => v > 0),
          different: a.some((v, i) => v !== b[i])};
}
"""


def test_chinese_terms_render_with_a_cjk_font(site, server, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{server}/book/glossary.html", wait_until="load")
        result = page.evaluate(CJK_GLYPHS_JS, "table td")
        page.screenshot(path=str(SCREENSHOTS / "glossary.png"), full_page=False)
    finally:
        page.close()
    assert result["found"], "the glossary has no Chinese term"
    assert result["inked"], f"Chinese characters draw nothing in {result['font']}"
    assert result["different"], (
        "Chinese characters render as identical missing-glyph boxes: install a CJK font "
        "(Debian fonts-noto-cjk, `make chromium`)"
    )
