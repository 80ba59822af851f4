"""Sphinx extension: the introduction's chapter list and its measured chapter times.

Two directives, used in ``book/intro.md``:

``chapter-list``
    One row per chapter in its body, ``number | file | title | builds on | summary``. It renders
    a table in which the chapters that are part of this build (in ``_toc.yml``) link to their
    page and the others read "in preparation". The rows are remembered for ``chapter-times``.

``chapter-times``
    A table of every chapter of the preceding ``chapter-list`` with its execution time in the
    ``smoke`` and ``cpu`` profiles (and ``gpu`` where measured), read at build time from
    ``bench/results.json`` (key ``chapter_seconds``, written by ``make bench``); "n/a" where a
    chapter or the whole file is missing. A change to the file re-reads the page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results.json"
PROFILES = ("smoke", "cpu", "gpu")
Cell = str | nodes.Node | list  # a table cell: plain text, a node or parsed inline nodes


@dataclass(frozen=True)
class Chapter:
    number: str  # "7"
    file: str  # "07_gpt_pretraining", the notebook's stem in chapters/
    title: str
    builds_on: str  # "4, 5" or "-"
    summary: str


def parse_rows(lines: list[str]) -> list[Chapter]:
    """Parse ``number | file | title | builds on | summary`` rows; raise ValueError otherwise."""
    rows = []
    for line in lines:
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != 5:
            raise ValueError(
                f"chapter-list row needs 5 cells 'number | file | title | builds on | "
                f"summary', got {len(cells)}: {line!r}"
            )
        rows.append(Chapter(*cells))
    return rows


def load_chapter_seconds(path: Path = RESULTS) -> tuple[dict[str, dict[str, float]], dict]:
    """``chapter_seconds`` of the last ``make bench`` and the run's date and machine."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, {}
    about = {"date": results.get("date"), "machine": results.get("machine") or {}}
    return results.get("chapter_seconds") or {}, about


def format_seconds(seconds: float | None) -> str:
    """``n/a`` for a missing time, seconds below two minutes, minutes above."""
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _table(header: list[Cell], rows: list[list[Cell]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["chapter-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)

    def row(cells: list[Cell]) -> nodes.row:
        r = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            para = nodes.paragraph()
            if isinstance(cell, str):
                para += nodes.Text(cell)
            elif isinstance(cell, list):
                para.extend(cell)
            else:
                para += cell
            entry += para
            r += entry
        return r

    head = nodes.thead()
    head += row(header)
    body = nodes.tbody()
    for cells in rows:
        body += row(cells)
    group += head
    group += body
    return table


class ChapterDirective(SphinxDirective):
    def inline(self, text: str) -> list[nodes.Node]:
        """Parse inline markup (``code``, *emphasis*) of a cell with the page's own parser."""
        parsed, messages = self.state.inline_text(text, self.lineno)
        return parsed + messages

    def chapter_cell(self, chapter: Chapter) -> nodes.Node:
        """A link to the chapter when it is part of this build, else its title in plain text."""
        docname = f"chapters/{chapter.file}"
        label = f"{chapter.number}. {chapter.title}"
        if docname not in self.env.found_docs:
            span = nodes.inline()
            span += nodes.Text(label + " ")
            span += nodes.emphasis(text="(in preparation)")
            return span
        ref = addnodes.pending_xref(
            "",
            refdomain="std",
            reftype="doc",
            reftarget=f"/{docname}",
            refexplicit=True,
            refdoc=self.env.docname,
        )
        ref += nodes.inline(text=label)
        return ref


class ChapterList(ChapterDirective):
    has_content = True

    def run(self) -> list[nodes.Node]:
        try:
            chapters = parse_rows(list(self.content))
        except ValueError as exc:
            raise self.error(str(exc)) from exc
        self.env.temp_data["book_chapters"] = chapters
        self.env.note_dependency(str(Path(self.env.srcdir) / "_toc.yml"))
        rows = [[self.chapter_cell(c), c.builds_on, self.inline(c.summary)] for c in chapters]
        return [_table(["chapter", "builds on", "what you do"], rows, [30, 10, 60])]


def chapter_seconds(seconds: dict[str, dict[str, float]], file: str) -> dict[str, float]:
    """A chapter's times by profile; a chapter of section notebooks (``12_applications`` with
    ``12_1_...``, ``12_2_...``) gets the sum of its sections, where every section was measured."""
    if file in seconds:
        return seconds[file]
    number = file.split("_", 1)[0]
    sections = [times for name, times in seconds.items() if re.match(rf"{number}_\d+_", name)]
    if not sections:
        return {}
    common = set.intersection(*(set(times) for times in sections))
    return {p: sum(times[p] for times in sections) for p in common}


class ChapterTimes(ChapterDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        chapters = self.env.temp_data.get("book_chapters")
        if not chapters:
            raise self.error("chapter-times needs a chapter-list earlier on the same page")
        results = RESULTS
        if self.config.chapter_times_results:
            results = Path(self.env.srcdir) / self.config.chapter_times_results
        self.env.note_dependency(str(results))
        seconds, about = load_chapter_seconds(results)
        profiles = [p for p in PROFILES if p != "gpu" or any("gpu" in s for s in seconds.values())]
        rows = []
        for chapter in chapters:
            measured = chapter_seconds(seconds, chapter.file)
            rows.append(
                [self.chapter_cell(chapter)] + [format_seconds(measured.get(p)) for p in profiles]
            )
        header = ["chapter"] + [nodes.literal(text=p) for p in profiles]
        table = _table(header, rows, [50] + [15] * len(profiles))
        if about:
            machine = about["machine"]
            where = ", ".join(
                str(x)
                for x in (
                    machine.get("cpu"),
                    f"{machine['cores']} cores" if machine.get("cores") else None,
                    f"torch {machine['torch']}" if machine.get("torch") else None,
                )
                if x
            )
            text = (
                f"Measured by the last `make bench` on {about['date'] or 'an unknown date'}"
                f"{' (' + where + ')' if where else ''}: the wall-clock time of executing each "
                "chapter once; n/a where that run did not measure it."
            )
        else:
            text = "No `make bench` results (bench/results.json) were found: every time is n/a."
        caption = nodes.paragraph(classes=["chapter-times-source"])
        caption.extend(self.inline(text))
        return [table, caption]


def setup(app: Sphinx) -> dict:
    app.add_directive("chapter-list", ChapterList)
    app.add_directive("chapter-times", ChapterTimes)
    # Where the benchmark results are, relative to the source folder ("" = bench/results.json).
    app.add_config_value("chapter_times_results", "", "env")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
