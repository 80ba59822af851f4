"""The Colab edition (book/_ext/colab_edition.py): plain Markdown that Colab renders, the same
code as the chapters, and the book's MyST turned into text a reader can use."""

from __future__ import annotations

import re
import sys

import nbformat
import pytest
from conftest import CHAPTERS, ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import colab_edition as ce  # noqa: E402

from llmbook_utils.notebook import GLUE_PREFIX, read_glued  # noqa: E402

# MyST that Colab shows as raw text.
MYST_ONLY = {
    "role": re.compile(r"\{[A-Za-z][\w:\-]*\}`"),
    "colon fence": re.compile(r"^[ \t]*:{3,}", re.M),
    "directive fence": re.compile(r"^[ \t]*`{3,}\{", re.M),
    "target": re.compile(r"^[ \t]*\([^()\s]+\)=[ \t]*$", re.M),
    "equation label": re.compile(r"\$\$[ \t]*\([^()\s]+\)"),
    "directive option": re.compile(r"^[ \t>]*:(class|label|name|open):", re.M),
}


@pytest.fixture(scope="module")
def bibliography():
    return ce.load_bibliography(ROOT / "book" / "references.bib")


@pytest.fixture(scope="module")
def editions(bibliography, tmp_path_factory):
    """Every chapter's Colab edition, with values from an executed copy where there is one."""
    equations = ce.book_equation_numbers(ROOT)
    out = {}
    for path in CHAPTERS:
        executed = ce.executed_copy(path.stem)
        edition, _ = ce.colab_edition(path, executed, bibliography, "https://x.io/b", equations)
        out[path.stem] = (edition, executed)
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_edition_has_no_myst_only_syntax(path, editions):
    edition, _ = editions[path.stem]
    problems = []
    for index, cell in enumerate(edition.cells):
        if cell.cell_type != "markdown":
            continue
        for what, pattern in MYST_ONLY.items():
            for m in pattern.finditer(cell.source):
                context = cell.source[max(0, m.start() - 40) : m.end() + 40]
                problems.append(f"cell {index}: {what}: {context!r}")
    assert not problems, f"{path.name}: MyST left in the Colab edition:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_edition_has_the_sources_code_byte_for_byte(path, editions):
    edition, _ = editions[path.stem]
    source = nbformat.read(path, as_version=4)
    ours = [(c.source, c.metadata.get("tags", [])) for c in edition.cells if c.cell_type == "code"]
    theirs = [(c.source, c.metadata.get("tags", [])) for c in source.cells if c.cell_type == "code"]
    assert ours == theirs, f"{path.name}: the Colab edition's code differs from the chapter's"
    assert all(not c.outputs for c in edition.cells if c.cell_type == "code")
    nbformat.validate(edition)


def test_a_real_citation_becomes_author_year(editions):
    text = "\n".join(
        c.source for edition, _ in editions.values() for c in edition.cells
        if c.cell_type == "markdown"
    )  # fmt: skip
    assert "(Vaswani et al., 2017)" in text


def test_glued_numbers_of_an_executed_chapter_appear(editions):
    # Executed copies older than their chapter (edited since) may lack its newest values.
    with_values = [
        (s, e)
        for s, (_, e) in editions.items()
        if e is not None and e.stat().st_mtime >= (ROOT / "chapters" / f"{s}.ipynb").stat().st_mtime
    ]
    if not with_values:
        pytest.skip("no up-to-date executed chapter (tests/test_chapters.py or `make book`)")
    for stem, executed in with_values:
        glued = read_glued(executed)
        source = nbformat.read(ROOT / "chapters" / f"{stem}.ipynb", as_version=4)
        edition, _ = editions[stem]
        text = "\n".join(c.source for c in edition.cells if c.cell_type == "markdown")
        roles = [
            m.group(1) for c in source.cells if c.cell_type == "markdown"
            for m in re.finditer(r"\{glue:text\}`([^`]+)`", c.source)
        ]  # fmt: skip
        assert roles, f"{stem}: no glued values to check"
        for content in roles:
            name, _, fmt = content.partition(":")
            assert name in glued, f"{stem}: {name!r} is quoted but never glued"
            assert ce.format_glued(glued[name], fmt) + ce.MARK in text
        profile = ce.build_profile(nbformat.read(executed, as_version=4))
        assert f"book's `{profile}` build" in edition.cells[0].source


def test_equations_are_numbered_as_on_the_website():
    """Chapter by chapter in toc order, only labelled equations (checked against a built page
    in tests/test_site.py)."""
    numbers = ce.book_equation_numbers(ROOT)
    assert sorted(numbers.values()) == list(range(1, len(numbers) + 1))


# ---------------------------------------------------------------------------------------------
# Concrete conversions on a small notebook
# ---------------------------------------------------------------------------------------------

MARKDOWN = r"""(sec-demo)=
## A demo

As shown by {cite:p}`vaswani2017attention`, and by {cite:t}`bahdanau2015neural`, see also
{cite:p}`vaswani2017attention,bahdanau2015neural`.

$$
a = b
$$ (eq-demo-first)

$$ c = d $$ (eq-demo-second)

Equation {eq}`eq-demo-second` follows from {eq}`eq-demo-first`. The loss is
{glue:text}`demo_loss:.3f` nats after {glue:text}`demo_steps` steps; see {ref}`sec-demo`.

:::{note}
A note with $x^2$.
:::

::::{admonition} Solution
:class: dropdown

The answer is {glue:text}`demo_loss:.1f`.

:::{tip} Nested
Inside.
:::

```python
print("code in a solution")
```
::::
"""


def _demo_notebook(tmp_path, with_outputs: bool):
    nb = nbformat.v4.new_notebook()
    code = "from llmbook_utils.notebook import glue\nglue('demo_loss', 1.23456)\n"
    nb.cells = [
        nbformat.v4.new_code_cell("print('set-up')", metadata={"tags": ["hide-input"]}),
        nbformat.v4.new_markdown_cell("# 99. Demo chapter"),
        nbformat.v4.new_code_cell(code),
        nbformat.v4.new_markdown_cell(MARKDOWN),
    ]
    source = tmp_path / "99_demo.ipynb"
    nbformat.write(nb, source)
    if not with_outputs:
        return source, None
    executed = nbformat.from_dict(nbformat.reads(nbformat.writes(nb), as_version=4))
    executed.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="device: cpu | profile: cpu | x\n")
    ]
    executed.cells[2].outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={f"{GLUE_PREFIX}text/plain": repr(value)},
            metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}},
        )
        for name, value in (("demo_loss", 1.23456), ("demo_steps", 300))
    ]
    executed_path = tmp_path / "executed.ipynb"
    nbformat.write(executed, executed_path)
    return source, executed_path


def _converted(tmp_path, bibliography, with_outputs=True):
    source, executed = _demo_notebook(tmp_path, with_outputs)
    edition, missing = ce.colab_edition(source, executed, bibliography)
    return edition, missing


def test_citations_equations_and_glue(tmp_path, bibliography):
    edition, missing = _converted(tmp_path, bibliography)
    assert not missing, missing
    text = edition.cells[4].source
    assert "As shown by (Vaswani et al., 2017)" in text
    assert "by Bahdanau et al. (2015)" in text
    assert "(Vaswani et al., 2017; Bahdanau et al., 2015)" in text
    assert "a = b \\tag{1}\n$$" in text and "$$ c = d \\tag{2}$$" in text
    assert "Equation (2) follows from (1)." in text
    assert f"The loss is\n1.235{ce.MARK} nats after 300{ce.MARK} steps" in text
    assert "see *A demo*" in text
    assert "book's `cpu` build" in edition.cells[0].source
    assert "(sec-demo)=" not in text


def test_admonitions_become_blockquotes_and_solutions_details(tmp_path, bibliography):
    edition, _ = _converted(tmp_path, bibliography)
    text = edition.cells[4].source
    assert "> **Note**\n>\n> A note with $x^2$." in text
    details = text[text.index("<details>") :]
    assert details.startswith("<details>\n<summary>Solution</summary>\n\nThe answer is 1.2")
    assert "> **Nested**\n>\n> Inside." in details
    assert '```python\nprint("code in a solution")\n```\n\n</details>' in details
    for what, pattern in MYST_ONLY.items():
        assert not pattern.search(text), what


def test_without_an_executed_copy_the_text_points_at_the_output(tmp_path, bibliography):
    edition, _ = _converted(tmp_path, bibliography, with_outputs=False)
    text = edition.cells[4].source
    assert "The loss is\n(the value printed by the code cell above) nats" in text
    assert ce.MARK not in text
    assert "printed by the code cells as you run them" in edition.cells[0].source
