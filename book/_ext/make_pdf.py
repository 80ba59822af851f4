"""Print the single-page HTML build of the book to a PDF with headless Chromium (``make pdf``).

No LaTeX and no network: the page is served from ``127.0.0.1`` and every other request is
refused. Before printing, the script

- waits until MathJax has typeset every formula;
- replaces every plotly figure with a static SVG image of itself (``Plotly.toImage``), so that
  figures keep their size and look on paper and no interactive control is left half-drawn;
- opens the exercise solutions (dropdown admonitions) so that the printed book carries them;
- inserts a table of contents (chapters and their sections, as links) after the title page.

Chromium then prints it on A4 with page numbers and a PDF outline (bookmarks) built from the
headings. Usage::

    python book/_ext/make_pdf.py _build/singlehtml/index.html _build/pdf/book.pdf
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TIMEOUT_MS = 300_000  # a whole book of figures and formulas, on a busy machine

# Runs in the page. Returns what it did, for the log and the tests.
PREPARE_JS = """
async (parts) => {
  const done = {formulas: 0, figures: 0, figureErrors: [], solutions: 0, tocEntries: 0};
  // 1. Math: MathJax 3 typesets asynchronously after its own deferred load.
  if (window.MathJax && MathJax.startup) {
    await MathJax.startup.promise;
    if (MathJax.typesetPromise) await MathJax.typesetPromise();
  }
  done.formulas = document.querySelectorAll('mjx-container').length;
  done.rawMath = document.querySelectorAll('div.math:not(:has(mjx-container))').length;
  // 2. Figures: each plotly graph becomes an SVG image of the same size.
  for (const gd of Array.from(document.querySelectorAll('.js-plotly-plot'))) {
    try {
      const width = Math.max(gd.offsetWidth, 300), height = Math.max(gd.offsetHeight, 250);
      const url = await Plotly.toImage(gd, {format: 'svg', width: width, height: height});
      const img = document.createElement('img');
      img.src = url;
      img.className = 'pdf-figure';
      img.style.width = '100%';
      img.style.maxWidth = width + 'px';
      gd.replaceWith(img);
      done.figures += 1;
    } catch (err) { done.figureErrors.push(String(err)); }
  }
  // 3. Solutions: open the dropdown admonitions (sphinx-togglebutton and <details>).
  document.querySelectorAll('.admonition.dropdown').forEach(el => {
    el.classList.remove('toggle-hidden');
    el.querySelectorAll('.toggle-hidden').forEach(c => c.classList.remove('toggle-hidden'));
    done.solutions += 1;
  });
  document.querySelectorAll('details.dropdown, details.toggle-details').forEach(el => {
    el.open = true;
    done.solutions += 1;
  });
  // 4. A table of contents after the introduction: the parts of _toc.yml, each document's
  //    title and its sections. Sphinx's single page inlines every document after a
  //    <span id="document-NAME">, its title one level down (h2) and its sections at h3.
  const toc = document.createElement('nav');
  toc.id = 'pdf-toc';
  toc.innerHTML = '<h2>Contents</h2>';
  const entry = (heading, cls) => {
    const li = document.createElement('li');
    li.className = cls;
    const a = document.createElement('a');
    a.href = '#' + heading.parentElement.id;
    a.textContent = heading.textContent.replace(/#$/, '').trim();
    li.appendChild(a);
    return li;
  };
  for (const part of parts) {
    const caption = document.createElement('p');
    caption.className = 'pdf-toc-part';
    caption.textContent = part.caption;
    const list = document.createElement('ul');
    for (const doc of part.docs) {
      // The document's section follows its anchor; a chapter's set-up cell may come first.
      let section = document.getElementById('document-' + doc);
      while (section && section.tagName !== 'SECTION') section = section.nextElementSibling;
      const title = section && section.querySelector(':scope > h2');
      if (!title) continue;
      list.appendChild(entry(title, 'pdf-toc-doc'));
      done.tocEntries += 1;
      for (const h3 of section.querySelectorAll(':scope > section > h3')) {
        list.appendChild(entry(h3, 'pdf-toc-section'));
        done.tocEntries += 1;
      }
    }
    if (list.children.length) { toc.appendChild(caption); toc.appendChild(list); }
  }
  const first = document.querySelector('.toctree-wrapper');
  if (first) first.before(toc);
  return done;
}
"""

PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
html, body { font-size: 10.5pt; }
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-footer, .bd-footer-article,
.prev-next-area, .header-article, .bd-header-article, #pst-back-to-top, .headerlink,
.copybtn, .toggle-button, button.toggle-button { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
.bd-container__inner, .bd-page-width { max-width: 100% !important; }
/* The theme's print-only title and page contents: replaced by the book's title and contents. */
#jb-print-docs-body { display: none !important; }
.bd-main .bd-content .bd-article h1:first-of-type {
  display: block !important; font-size: 2.6em; text-align: center; margin-top: 30%;
}
.bd-main .bd-content .bd-article h1:first-of-type + p { text-align: center; break-after: page; }
.toctree-wrapper > span[id^="document-"] { display: block; break-before: page; }
#pdf-toc { break-before: page; }
#pdf-toc ul { list-style: none; padding-left: 0; margin-bottom: 0.6em; }
#pdf-toc .pdf-toc-part { font-weight: bold; margin: 0.8em 0 0.2em 0; }
#pdf-toc .pdf-toc-section { padding-left: 1.5em; font-size: 0.9em; }
#pdf-toc a { text-decoration: none; color: inherit; }
img.pdf-figure, mjx-container, table, pre { break-inside: avoid; }
h1, h2, h3 { break-after: avoid; }
"""

FOOTER = (
    '<div style="font-size:8pt;width:100%;text-align:center;color:#666;">'
    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the build folder; a missing path is retried without its leading folders.

    The single page of a book whose root document is ``book/intro`` is ``book/intro.html``, but
    its links to ``_static/`` and ``_images/`` are written relative to the build folder.
    """

    def translate_path(self, path: str) -> str:
        local = Path(super().translate_path(path))
        root = Path(self.directory)
        parts = local.relative_to(root).parts if local.is_relative_to(root) else ()
        for start in range(len(parts)):
            candidate = root.joinpath(*parts[start:])
            if candidate.exists():
                return str(candidate)
        return str(local)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


def book_parts(toc: Path) -> list[dict]:
    """The parts of ``_toc.yml`` (jb-book format): ``[{"caption": ..., "docs": [...]}]``."""
    import yaml
    from colab_edition import toc_files  # book/_ext, this script's folder

    if not toc.is_file():
        return []
    spec = yaml.safe_load(toc.read_text())
    parts = [{"caption": "Introduction", "docs": [spec.get("root", "")]}]
    for part in spec.get("parts", []):
        docs = toc_files(part.get("chapters", []))  # a chapter's sections follow it
        parts.append({"caption": part.get("caption", ""), "docs": docs})
    return parts


def resolve_page(html: Path) -> Path:
    """Follow the ``index.html`` that only redirects (``<meta http-equiv="Refresh">``)."""
    text = html.read_text(errors="replace")[:2000]
    match = re.search(r'http-equiv="Refresh"\s+content="0;\s*url=([^"]+)"', text, re.IGNORECASE)
    return (html.parent / match.group(1)).resolve() if match else html


@contextmanager
def serve(folder: Path):
    """Serve ``folder`` on a free port of 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def find_chromium() -> str:
    """Debian's Chromium (installed by ``make chromium``); a clear error when it is missing."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError(
            "make pdf needs Chromium: install Debian's `chromium` (make chromium) or put a "
            "chromium executable on PATH"
        )
    return executable


def print_pdf(html: Path, pdf: Path, toc: Path = Path("_toc.yml")) -> dict:
    """Print ``html`` (the single-page build's index.html) to ``pdf``; returns what was done.

    Raises:
        FileNotFoundError: when ``html`` does not exist (build the single-page HTML first).
        RuntimeError: when Chromium is missing, the page requested the network, or a figure
            could not be converted.
    """
    from playwright.sync_api import sync_playwright

    if not html.is_file():
        raise FileNotFoundError(
            f"{html} not found: build it first with `jupyter-book build . --builder singlehtml`"
        )
    executable = find_chromium()
    page_path = resolve_page(html).relative_to(html.parent.resolve()).as_posix()
    parts = book_parts(toc)
    blocked: list[str] = []
    with serve(html.parent.resolve()) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        # A4's text width at 96 px per inch, so figures are laid out at their printed size.
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        host = urlparse(base).netloc

        def only_local(route) -> None:
            if urlparse(route.request.url).netloc == host or route.request.url.startswith("data:"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{base}/{page_path}", wait_until="load", timeout=TIMEOUT_MS)
        page.add_style_tag(content=PRINT_CSS)
        done = page.evaluate(PREPARE_JS, parts)
        page.emulate_media(media="print")
        pdf.parent.mkdir(parents=True, exist_ok=True)
        page.pdf(
            path=str(pdf),
            format="A4",
            print_background=True,
            display_header_footer=True,
            header_template="<div></div>",
            footer_template=FOOTER,
            margin={"top": "16mm", "bottom": "18mm", "left": "14mm", "right": "14mm"},
            outline=True,
            tagged=True,
        )
        browser.close()
    done["blocked"] = blocked
    if blocked:
        raise RuntimeError(f"the page requested the network, refused: {blocked[:5]}")
    if done["figureErrors"]:
        raise RuntimeError(f"plotly figures could not be converted: {done['figureErrors'][:3]}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="index.html of the single-page HTML build")
    parser.add_argument("pdf", type=Path, help="the PDF to write")
    parser.add_argument("--toc", type=Path, default=Path("_toc.yml"), help="the book's _toc.yml")
    args = parser.parse_args(argv)
    done = print_pdf(args.html, args.pdf, args.toc)
    print(
        f"{args.pdf}: {args.pdf.stat().st_size / 1e6:.1f} MB, {done['formulas']} formulas, "
        f"{done['figures']} figures, {done['solutions']} solutions opened, "
        f"{done['tocEntries']} contents entries"
    )
    if done.get("rawMath"):
        print(f"warning: {done['rawMath']} display formulas were not typeset", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
