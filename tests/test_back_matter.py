"""The back matter: FAQ links and numbers, resource snippets offline, intro, bibliography, PDF.

The `-W` book build is the final judge of links and pasted numbers; these tests catch a broken
one in seconds and name it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from myst_parser.mdit_to_docutils.base import default_slugify

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
sys.path.insert(0, str(BOOK / "_ext"))

import chapter_table  # noqa: E402  (book/_ext is not a package)
from colab_edition import toc_files  # noqa: E402

FAQ_TOPICS = [
    "pretrained model",
    "imbalanced",
    "overfitting",
    "faster",
    "deploy",
    "framework",
    "evaluate",
    "large models beat small",
    "large model trained",
]
LINK = re.compile(r"\]\((\.\./chapters/[^)#\s]+\.ipynb)(?:#([^)\s]+))?\)")
PASTE = re.compile(r"\{glue:text\}`(\.\./chapters/[^:`]+\.ipynb)::([^:`]+)(?::[^`]*)?`")


def _toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return {toc["root"], *toc_files(toc["parts"])}


def _markdown(notebook: Path) -> str:
    cells = nbformat.read(notebook, as_version=4).cells
    return "\n\n".join(c.source for c in cells if c.cell_type == "markdown")


def _heading_slugs(markdown: str, max_level: int = 3) -> set[str]:
    """The anchors MyST gives headings with ``myst_heading_anchors: 3`` (its own slug function)."""
    tokens = MarkdownIt("commonmark").use(dollarmath_plugin).parse(markdown)
    slugs: set[str] = set()
    for i, token in enumerate(tokens):
        if token.type != "heading_open" or int(token.tag[1]) > max_level:
            continue
        title = "".join(
            child.content
            for child in tokens[i + 1].children or []
            if child.type in ("text", "code_inline")
        )
        slug, n = default_slugify(title), 1
        while slug in slugs:
            slug, n = f"{default_slugify(title)}-{n}", n + 1
        slugs.add(slug)
    return slugs


# FAQ --------------------------------------------------------------------------------------------


def test_faq_answers_every_question():
    faq = (BOOK / "faq.md").read_text()
    questions = [line[3:].lower() for line in faq.splitlines() if line.startswith("## ")]
    for topic in FAQ_TOPICS:
        assert any(topic in q for q in questions), f"the FAQ has no question on {topic!r}"
    # Every answer links to a chapter section that demonstrates it.
    answers = re.split(r"^## ", faq, flags=re.M)[1:]
    for answer in answers:
        assert LINK.search(answer), f"FAQ answer without a chapter link: {answer.splitlines()[0]}"


@pytest.mark.parametrize("page", ["faq.md", "intro.md", "resources.md"])
def test_links_to_chapter_sections_resolve(page):
    text = (BOOK / page).read_text()
    toc = _toc_files()
    for target, anchor in LINK.findall(text):
        notebook = (BOOK / target).resolve()
        assert notebook.is_file(), f"{page} links to {target}, which does not exist"
        docname = notebook.relative_to(ROOT).with_suffix("").as_posix()
        assert docname in toc, f"{page} links to {docname}, which is not in _toc.yml"
        if anchor:
            slugs = _heading_slugs(_markdown(notebook))
            assert anchor in slugs, f"{page}: no heading #{anchor} in {target}"


def test_faq_numbers_are_glued_by_their_chapter():
    """Each pasted number is one its chapter glues (and quotes), so the build can paste it."""
    faq = (BOOK / "faq.md").read_text()
    pasted = PASTE.findall(faq)
    assert len(pasted) >= 9, "the FAQ should quote the measured numbers"
    toc = _toc_files()
    for target, key in pasted:
        notebook = (BOOK / target).resolve()
        assert notebook.relative_to(ROOT).with_suffix("").as_posix() in toc, target
        cells = nbformat.read(notebook, as_version=4).cells
        code = "\n".join(c.source for c in cells if c.cell_type == "code")
        quoted = f"`{key}" in _markdown(notebook)
        glued = re.search(rf"""glue\(\s*["']{re.escape(key)}["']""", code)
        assert quoted or glued, f"{target} does not glue {key!r}"


# Resources -----------------------------------------------------------------------------------

SNIPPET_RUNNER = textwrap.dedent(
    """
    import json, sys, traceback
    results = []
    for code in json.load(open(sys.argv[1])):
        try:
            exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})
            results.append({"ok": True})
        except BaseException as exc:
            results.append({"ok": False, "type": type(exc).__name__, "message": str(exc)[:500]})
    print(json.dumps(results))
    """
)


def _snippets() -> list[str]:
    text = (BOOK / "resources.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_resources_cover_frameworks_models_and_data_sets():
    text = (BOOK / "resources.md").read_text()
    for name in ["PyTorch", "TensorFlow", "Keras", "JAX", "BERT", "GPT-2", "T5", "ALBERT"]:
        assert name in text, name
    for name in ["Llama", "GLUE", "SQuAD", "ImageNet", "WMT"]:
        assert name in text, name
    assert text.count("licence") + text.count("Apache-2.0") >= 10
    for code in _snippets():
        first = code.splitlines()[0]
        assert first.startswith(("# Needs the Hugging Face Hub", "# Works offline")), first


@pytest.mark.slow
def test_resource_snippets_fail_clearly_offline(tmp_path):
    """Offline, every Hub snippet stops with an error naming the Hub or offline mode."""
    snippets = _snippets()
    assert len(snippets) >= 10
    (tmp_path / "snippets.json").write_text(json.dumps(snippets))
    (tmp_path / "run.py").write_text(SNIPPET_RUNNER)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), str(tmp_path / "snippets.json")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for code, result in zip(snippets, results, strict=True):
        name = code.splitlines()[1:3]
        if code.startswith("# Works offline"):
            assert result["ok"], f"{name}: {result}"
            continue
        assert not result["ok"], f"{name} ran offline: it should need the Hub"
        message = result["message"].lower()
        assert any(w in message for w in ("hub", "huggingface.co", "offline")), (name, result)


# Intro and its extension -----------------------------------------------------------------------


def _intro_rows() -> list[chapter_table.Chapter]:
    text = (BOOK / "intro.md").read_text()
    body = text.split(":::{chapter-list}", 1)[1].split("\n:::", 1)[0]
    return chapter_table.parse_rows(body.splitlines())


def test_intro_lists_all_fifteen_chapters_with_a_reading_map():
    rows = _intro_rows()
    assert [int(r.number) for r in rows] == list(range(1, 16))
    for row in rows:
        assert row.file.startswith(f"{int(row.number):02d}_"), row
        assert row.summary, row
        for dep in re.findall(r"\d+", row.builds_on):
            assert int(dep) < int(row.number), f"chapter {row.number} builds on a later one"
    files = {r.file for r in rows}
    for notebook in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"):
        assert notebook.stem in files or notebook.stem.startswith("12_"), notebook.name
    intro = (BOOK / "intro.md").read_text()
    for heading in ["## A reading map", "## Prerequisites", ":::{chapter-times}"]:
        assert heading in intro, heading


def test_chapter_table_helpers(tmp_path):
    with pytest.raises(ValueError, match="5 cells"):
        chapter_table.parse_rows(["1 | 01_history | title"])
    assert chapter_table.format_seconds(None) == "n/a"
    assert chapter_table.format_seconds(42.4) == "42 s"
    assert chapter_table.format_seconds(399.2) == "6.7 min"
    assert chapter_table.load_chapter_seconds(tmp_path / "missing.json") == ({}, {})
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"date": "2026-01-01", "chapter_seconds": {"x": {"cpu": 3.0}}}))
    seconds, about = chapter_table.load_chapter_seconds(results)
    assert seconds == {"x": {"cpu": 3.0}} and about["date"] == "2026-01-01"
    sections = {"12_1_a": {"smoke": 1.0, "cpu": 10.0}, "12_2_b": {"smoke": 2.0},
                "12_3_c": {"smoke": 4.0, "cpu": 30.0}, "13_x": {"cpu": 7.0}}  # fmt: skip
    assert chapter_table.chapter_seconds(sections, "13_x") == {"cpu": 7.0}
    assert chapter_table.chapter_seconds(sections, "12_applications") == {"smoke": 7.0}
    assert chapter_table.chapter_seconds(sections, "11_y") == {}


def test_chapter_times_directive_renders_bench_results(tmp_path):
    """A two-page Sphinx project: written chapters link, others are in preparation, times n/a."""
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    (src / "chapters").mkdir(parents=True)
    (src / "chapters" / "01_a.md").write_text("# A\n")
    (src / "bench.json").write_text(
        json.dumps({"date": "2026-01-01", "chapter_seconds": {"01_a": {"smoke": 5, "cpu": 300}}})
    )
    (src / "index.md").write_text(
        "# Book\n\n```{toctree}\nchapters/01_a\n```\n\n"
        ":::{chapter-list}\n1 | 01_a | A | - | does `a`\n2 | 02_b | B | 1 | does b\n:::\n\n"
        ":::{chapter-times}\n:::\n"
    )
    (src / "conf.py").write_text(
        f"import sys; sys.path.insert(0, {str(BOOK / '_ext')!r})\n"
        "extensions = ['myst_parser', 'chapter_table']\n"
        "myst_enable_extensions = ['colon_fence']\n"
        "chapter_times_results = 'bench.json'\n"
    )
    out = tmp_path / "html"
    app = Sphinx(src, src, out, tmp_path / "doctrees", "html", status=None, warningiserror=True)
    app.build()
    html = (out / "index.html").read_text()
    assert 'href="chapters/01_a.html"' in html
    assert "(in preparation)" in html and "02_b" not in html.split("(in preparation)")[0][-200:]
    assert "5 s" in html and "5.0 min" in html and "n/a" in html
    assert "<code" in html  # inline markup of the summary is parsed
    assert "Measured by the last" in html and "2026-01-01" in html


# Bibliography and glossary ---------------------------------------------------------------------


def test_every_citation_resolves_and_the_bibliography_lists_all():
    bib = (BOOK / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([^,\s]+),", bib, flags=re.M)
    assert len(keys) == len(set(keys)), "duplicate keys in references.bib"
    sources = [p.read_text() for p in BOOK.glob("*.md")]
    sources += [_markdown(p) for p in (ROOT / "chapters").glob("*.ipynb")]
    cited = set()
    for text in sources:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited |= {k.strip() for k in group.split(",")}
    assert cited - set(keys) == set(), f"cited but not in references.bib: {cited - set(keys)}"
    assert ":all:" in (BOOK / "references.md").read_text()


# The printable edition ----------------------------------------------------------------------------


def test_make_pdf_target_prints_the_single_page_build():
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\npdf:", 1)[1].split("\n\n", 1)[0]
    assert "--builder singlehtml" in target and "make_pdf.py" in target
    assert "poppler-utils" in makefile
    script = (BOOK / "_ext" / "make_pdf.py").read_text()
    for piece in ["MathJax.startup.promise", "Plotly.toImage", "outline=True", "route.abort()"]:
        assert piece in script, piece


TINY_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<script src="_static/plotly.min.js"></script>
<script>window.MathJax = {tex: {inlineMath: [["\\\\(", "\\\\)"]]}};</script>
<script defer src="_static/mathjax/tex-chtml.js"></script></head>
<body><div class="bd-main"><div class="bd-content"><article class="bd-article">
<section id="book"><h1>Tiny book</h1><p>subtitle</p><p>Intro.</p>
<div class="toctree-wrapper"><span id="document-ch"></span>
<section id="chapter-one"><h2>1. Chapter one</h2>
<section id="a-section"><h3>1.1 A section</h3>
<div class="math notranslate nohighlight">\\[ \\sigma(z)_i = e^{z_i} / \\sum_j e^{z_j} \\]</div>
<div id="fig" style="width:500px;height:300px"></div>
<script>Plotly.newPlot('fig', [{x: [1, 2, 3], y: [2, 1, 3]}], {title: {text: 'A figure'}});</script>
</section></section></div></section></article></div></div></body></html>
"""


@pytest.mark.slow
def test_make_pdf_prints_math_figures_and_contents(tmp_path):
    """make_pdf.py on a tiny page: formula typeset, figure converted, contents inserted."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("Chromium not found: install Debian's `chromium` (make chromium) to run this")
    import plotly

    mathjax = Path(sys.prefix) / "lib"
    mathjax = next(mathjax.glob("python3*/site-packages/sphinx-mathjax-offline/static/mathjax"))
    static = tmp_path / "site" / "_static"
    shutil.copytree(mathjax, static / "mathjax")
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static)
    (tmp_path / "site" / "index.html").write_text(TINY_PAGE)
    (tmp_path / "toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: Part one\n    chapters:\n"
        "      - file: ch\n"
    )
    pdf = tmp_path / "book.pdf"
    # In a subprocess: the session's shared browser fixture keeps a Playwright loop running.
    out = subprocess.run(
        [sys.executable, str(BOOK / "_ext" / "make_pdf.py"), str(tmp_path / "site" / "index.html"),
         str(pdf), "--toc", str(tmp_path / "toc.yml")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF")
    assert "1 formulas, 1 figures" in out.stdout, out.stdout
    assert "2 contents entries" in out.stdout, out.stdout
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "Contents" in text and "Part one" in text and "1.1 A section" in text


def test_pdf_contents_list_a_chapters_sections_after_it(tmp_path):
    import make_pdf

    toc = tmp_path / "toc.yml"
    toc.write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: Part one\n    chapters:\n"
        "      - file: a\n        sections:\n          - file: a1\n          - file: a2\n"
        "      - file: b\n"
    )
    assert make_pdf.book_parts(toc) == [
        {"caption": "Introduction", "docs": ["intro"]},
        {"caption": "Part one", "docs": ["a", "a1", "a2", "b"]},
    ]
