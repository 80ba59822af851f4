"""The Colab edition of the chapters: the same code, with the book's MyST as plain Markdown.

Colab renders CommonMark plus math, not MyST, so a chapter opened there as it is would show raw
``{glue:text}`` roles, ``{cite:p}`` keys and ``:::{admonition}`` fences. This module rewrites
every markdown cell of a chapter and leaves every code cell's source untouched (byte-identical):

- ``{glue:text}`name:.3f``` becomes the value, formatted as on the website, taken from an
  executed copy of the chapter and marked with a dagger (the note at the top says which build
  computed it); with no executed copy it becomes a phrase pointing at the cell that prints it;
- ``{cite:p}`key``` becomes "(Author, Year)" and ``{cite:t}`key``` "Author (Year)", from
  ``book/references.bib``;
- ``$$ ... $$ (label)`` becomes ``$$ ... \\tag{N} $$`` and ``{eq}`label``` becomes "(N)", with
  N counted in order of the labelled equations of the chapter, as the website numbers them;
- ``:::{admonition} Solution`` with ``:class: dropdown`` becomes ``<details>``, other
  admonitions and notes become blockquotes with a bold title, ``(label)=`` targets vanish.

``make colab`` writes the edition to ``_build/colab/chapters``; the book's workflow publishes it
on the ``colab`` branch, which the website's Colab button opens (``book_offline`` rewrites the
launch URL). Run ``python book/_ext/colab_edition.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import ast
import codecs
import contextlib
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
MARK = "\u2020"  # the dagger after a value taken from the book's build
# Where executed copies of the chapters are looked for, first match wins: `make book`,
# the site test's build and the fresh-venv smoke run of tests/test_chapters.py.
EXECUTED_DIRS = (
    "_build/jupyter_execute/chapters",
    "_build/test/_build/jupyter_execute/chapters",
    "_build/smoke/chapters",
)
ADMONITIONS = {
    "note", "tip", "hint", "important", "warning", "caution", "attention", "danger", "error",
    "seealso", "admonition", "dropdown", "margin", "sidebar", "topic", "epigraph",
}  # fmt: skip

ROLE = re.compile(r"\{([A-Za-z][\w:\-]*)\}`([^`]*)`")
FENCE_OPEN = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>:{3,}|`{3,})\{(?P<name>[\w:\-]+)\}[ \t]*(?P<arg>.*)$"
)
PLAIN_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
OPTION = re.compile(r"^[ \t]*:(?P<key>[\w\-]+):[ \t]*(?P<value>.*)$")
TARGET = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$", re.M)
LABELLED_MATH = re.compile(r"\$\$(?P<body>.+?)\$\$[ \t]*\((?P<label>[^()\s]+)\)", re.S)
HEADING = re.compile(r"^#{1,6}[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$", re.M)


# ---------------------------------------------------------------------------------------------
# Bibliography
# ---------------------------------------------------------------------------------------------


def _latex_to_text(text: str) -> str:
    """``Kaiser, {\\L}ukasz`` -> ``Kaiser, Łukasz``; braces that protect case are dropped."""
    import latexcodec  # noqa: F401  (registers the "ulatex" codec; a pybtex dependency)

    with contextlib.suppress(UnicodeDecodeError, ValueError):
        text = codecs.decode(text, "ulatex")
    return text.replace("{", "").replace("}", "").strip()


def load_bibliography(path: Path) -> dict[str, tuple[str, str]]:
    """Map every key of a BibTeX file to (authors as cited, year).

    One author gives "Vaswani", two "Bahdanau and Cho", three or more "Vaswani et al.";
    an entry with only an editor or an organisation uses those.
    """
    from pybtex.database import parse_file

    cited: dict[str, tuple[str, str]] = {}
    for key, entry in parse_file(str(path), bib_format="bibtex").entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in people]
        if any(n.lower() == "others" for n in names):
            names = [n for n in names if n.lower() != "others"] + ["", ""]  # force "et al."
        if not names:
            fallback = entry.fields.get("organization") or entry.fields.get("institution") or key
            names = [_latex_to_text(fallback)]
        if len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        cited[key] = (who, _latex_to_text(entry.fields.get("year", "n.d.")))
    return cited


# ---------------------------------------------------------------------------------------------
# One chapter's context: glued values, equation and target numbers
# ---------------------------------------------------------------------------------------------


@dataclass
class Context:
    """Everything the conversion of one chapter needs besides its own markdown."""

    bibliography: dict[str, tuple[str, str]]
    glued: dict[str, str] | None  # name -> text/plain from an executed copy; None: none found
    glue_cells: dict[str, int] = field(default_factory=dict)  # name -> index of its code cell
    equations: dict[str, int] = field(default_factory=dict)  # label -> number in the chapter
    targets: dict[str, str] = field(default_factory=dict)  # (label)= -> the heading after it
    site_url: str = ""
    missing: list[str] = field(default_factory=list)  # problems found, reported by the CLI


def _glue_calls(source: str) -> list[str]:
    return re.findall(r"""\bglue\(\s*(?:f?)["']([^"'{}]+)["']""", source)


def _labelled_equations(text: str) -> list[str]:
    """Labels of ``$$ ... $$ (label)`` blocks and labelled ``{math}`` directives, in order."""
    found: list[tuple[int, str]] = [
        (m.start(), m.group("label")) for m in LABELLED_MATH.finditer(text)
    ]
    for m in re.finditer(r"\{math\}[^\n]*\n(?:[ \t]*:[\w\-]+:[^\n]*\n)*", text):
        label = re.search(r":label:[ \t]*(\S+)", m.group(0))
        if label:
            found.append((m.start(), label.group(1)))
    return [label for _, label in sorted(found)]


def number_equations(markdown_cells: list[str], start: int = 1) -> dict[str, int]:
    """Labels of displayed equations, numbered ``start``, ``start + 1``, ... in reading order."""
    labels = [label for text in markdown_cells for label in _labelled_equations(text)]
    return {label: n for n, label in enumerate(labels, start)}


def toc_files(node: object) -> list[str]:
    """Every ``file`` of a ``_toc.yml`` node, in order, sections within chapters included."""
    files: list[str] = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        for key in ("parts", "chapters", "sections"):
            files += toc_files(node.get(key, []))
    elif isinstance(node, list):
        for item in node:
            files += toc_files(item)
    return files


def book_equation_numbers(root: Path = ROOT) -> dict[str, int]:
    """Every labelled equation of the book with the number the website gives it.

    The website (numfig with multi-toc numbering) counts labelled equations through the whole
    book in table-of-contents order; unlabelled ones get no number. So chapter 5's first
    labelled equation follows chapter 4's last.
    """
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    numbers: dict[str, int] = {}
    for entry in [toc["root"], *toc_files(toc.get("parts", toc.get("chapters", [])))]:
        path = next(
            (
                root / f"{entry}{ext}"
                for ext in (".ipynb", ".md")
                if (root / f"{entry}{ext}").exists()
            ),
            None,
        )
        if path is None:
            continue
        if path.suffix == ".ipynb":
            cells = nbformat.read(path, as_version=4).cells
            texts = [c.source for c in cells if c.cell_type == "markdown"]
        else:
            texts = [path.read_text()]
        numbers.update(number_equations(texts, start=len(numbers) + 1))
    return numbers


def build_context(
    nb: nbformat.NotebookNode,
    bibliography: dict[str, tuple[str, str]],
    glued: dict[str, str] | None,
    site_url: str = "",
    equations: dict[str, int] | None = None,
) -> Context:
    """``equations``: the book-wide numbers (``book_equation_numbers``); default: this chapter
    alone, numbered from 1."""
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    ctx = Context(bibliography=bibliography, glued=glued, site_url=site_url)
    ctx.equations = number_equations(markdown) if equations is None else equations
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            for name in _glue_calls(cell.source):
                ctx.glue_cells.setdefault(name, index)
        else:
            for m in TARGET.finditer(cell.source):
                heading = HEADING.search(cell.source, m.end())
                if heading:
                    ctx.targets[m.group("label")] = heading.group("title")
    return ctx


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


def format_glued(text: str, fmt_spec: str) -> str:
    """A glued value's ``text/plain`` formatted as MyST-NB's ``{glue:text}`` formats it."""
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if not fmt_spec:
        return str(value)
    kind = fmt_spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, fmt_spec)


def _split_title_target(content: str) -> tuple[str | None, str]:
    """``Text <target>`` -> (Text, target); ``target`` -> (None, target)."""
    m = re.fullmatch(r"(?P<title>.*?)\s*<(?P<target>[^<>]+)>", content.strip(), re.S)
    if m and m.group("title"):
        return m.group("title"), m.group("target")
    return None, content.strip()


def _cite(role: str, content: str, ctx: Context) -> str:
    keys = [k.strip() for k in content.split(",") if k.strip()]
    found = []
    for key in keys:
        if key not in ctx.bibliography:
            ctx.missing.append(f"citation key {key!r} is not in references.bib")
            found.append((key, "n.d."))
        else:
            found.append(ctx.bibliography[key])
    kind = role.split(":", 1)[1] if ":" in role else "p"
    if kind in ("t", "ts"):
        return ", ".join(f"{who} ({year})" for who, year in found)
    if kind == "author":
        return ", ".join(who for who, _ in found)
    if kind == "year":
        return ", ".join(year for _, year in found)
    return "(" + "; ".join(f"{who}, {year}" for who, year in found) + ")"


def _glue(content: str, cell_index: int, ctx: Context) -> str:
    name, _, fmt_spec = content.strip().partition(":")
    if ctx.glued is not None and name in ctx.glued:
        return format_glued(ctx.glued[name], fmt_spec) + MARK
    if ctx.glued is not None:
        ctx.missing.append(f"glued value {name!r} is not in the executed copy")
    source = ctx.glue_cells.get(name)
    if source is None:
        return "(the value printed by the chapter's code)"
    where = "above" if source < cell_index else "below"
    return f"(the value printed by the code cell {where})"


def convert_roles(text: str, cell_index: int, ctx: Context) -> str:
    def replace(m: re.Match) -> str:
        role, content = m.group(1), m.group(2)
        if role.startswith("glue"):
            return _glue(content, cell_index, ctx)
        if role.startswith("cite"):
            return _cite(role, content, ctx)
        if role == "eq":
            title, label = _split_title_target(content)
            if label in ctx.equations:
                number = f"({ctx.equations[label]})"
                return title.replace("%s", number) if title else number
            ctx.missing.append(f"equation {label!r} is not labelled in the book")
            return title or "(an equation on the book's website)"
        if role == "numref":
            title, label = _split_title_target(content)
            return title.replace("%s", "").strip() if title else ctx.targets.get(label, label)
        if role == "ref":
            title, label = _split_title_target(content)
            return title or f"*{ctx.targets.get(label, label)}*"
        if role == "doc":
            title, target = _split_title_target(content)
            url = f"{ctx.site_url}/{target.lstrip('/')}.html" if ctx.site_url else ""
            return f"[{title or target}]({url})" if url else (title or target)
        if role == "math":
            return f"${content}$"
        if role in ("term", "abbr", "sub", "sup", "kbd", "code", "samp", "file", "command"):
            title, _ = _split_title_target(content)
            text = title or content
            return f"`{text}`" if role in ("code", "samp", "file", "command", "kbd") else text
        return content  # an unknown role: its text, without the markup

    return ROLE.sub(replace, text)


# ---------------------------------------------------------------------------------------------
# Directives, math labels, targets
# ---------------------------------------------------------------------------------------------


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and set(stripped) == {fence[0]} and len(stripped) >= len(fence)


def _render_directive(name: str, arg: str, options: dict[str, str], body: str) -> str:
    body = body.strip("\n")
    classes = options.get("class", "").split()
    if name == "math":
        label = options.get("label")
        return f"$$\n{body}\n$$ ({label})" if label else f"$$\n{body}\n$$"
    if name in ("figure", "image"):
        return f"![{body or arg}]({arg})"
    if name.startswith("glue"):
        return "*(A figure computed by the code: run the cells above to see it.)*"
    title = arg.strip() or name.replace("-", " ").capitalize()
    if name == "dropdown" or "dropdown" in classes or name == "toggle":
        return f"<details>\n<summary>{title}</summary>\n\n{body}\n\n</details>"
    # Admonitions, notes and anything unknown read best as a blockquote with a bold title.
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in body.split("\n"))
    return f"> **{title}**\n>\n{quoted}"


def convert_directives(text: str) -> str:
    """Turn every ``:::{name}`` / ```` ```{name} ```` block (nested too) into plain Markdown."""
    lines = text.split("\n")

    def parse(start: int, closing: str | None) -> tuple[list[str], int]:
        out: list[str] = []
        i = start
        while i < len(lines):
            line = lines[i]
            if closing is not None and _closes(line, closing):
                return out, i + 1
            opened = FENCE_OPEN.match(line)
            if opened:
                i += 1
                options: dict[str, str] = {}
                while i < len(lines) and OPTION.match(lines[i]):
                    option = OPTION.match(lines[i])
                    options[option.group("key")] = option.group("value").strip()
                    i += 1
                body, i = parse(i, opened.group("fence"))
                rendered = _render_directive(
                    opened.group("name"), opened.group("arg"), options, "\n".join(body)
                )
                out.extend(rendered.split("\n"))
                continue
            plain = PLAIN_FENCE.match(line)
            if plain and not (closing and _closes(line, closing)):
                fence = plain.group("fence")
                out.append(line)
                i += 1
                while i < len(lines) and not _closes(lines[i], fence):
                    out.append(lines[i])
                    i += 1
                if i < len(lines):
                    out.append(lines[i])
                    i += 1
                continue
            out.append(line)
            i += 1
        return out, i

    converted, _ = parse(0, None)
    return "\n".join(converted)


def convert_math_labels(text: str, ctx: Context) -> str:
    def replace(m: re.Match) -> str:
        number = ctx.equations.get(m.group("label"))
        body = m.group("body").rstrip()
        tag = f" \\tag{{{number}}}" if number else ""
        end = "\n" if "\n" in body else ""
        return f"$${body}{tag}{end}$$"

    return LABELLED_MATH.sub(replace, text)


def convert_markdown(text: str, cell_index: int, ctx: Context) -> str:
    """One markdown cell: directives, then labelled math, then targets, then roles."""
    text = convert_directives(text)
    text = convert_math_labels(text, ctx)
    text = TARGET.sub("", text)
    text = convert_roles(text, cell_index, ctx)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


# ---------------------------------------------------------------------------------------------
# Whole notebooks
# ---------------------------------------------------------------------------------------------


def executed_copy(stem: str, root: Path = ROOT) -> Path | None:
    for folder in EXECUTED_DIRS:
        path = root / folder / f"{stem}.ipynb"
        if path.exists():
            return path
    return None


def build_profile(executed: nbformat.NotebookNode) -> str | None:
    """The profile an executed chapter ran in, from its set-up cell's ``describe()`` line."""
    for cell in executed.cells[:3]:
        for output in cell.get("outputs", []):
            m = re.search(r"profile: (\w+)", str(output.get("text", "")))
            if m:
                return m.group(1)
    return None


def _note(title: str, profile: str | None, has_values: bool, page_url: str) -> str:
    link = f"[the book's website]({page_url})" if page_url else "the book's website"
    values = (
        f"Numbers in the text marked {MARK} come from the book's `{profile or 'default'}` "
        "build; your run prints its own, which may differ (another profile, another machine)."
        if has_values
        else "Numbers that the text quotes are printed by the code cells as you run them."
    )
    return (
        f"> **Colab edition** of *{title}*, generated from the chapter in the book's repository; "
        f"the same chapter with figures and cross-references is on {link}. Run the first cell "
        f"to install the book's package, then run the cells in order. {values}"
    )


def site_url_from_config(config: dict) -> str:
    url = (config.get("html") or {}).get("baseurl", "")
    if url:
        return url.rstrip("/")
    repo = (config.get("repository") or {}).get("url", "")
    m = re.match(r"https://github\.com/([^/]+)/([^/]+?)/?$", repo)
    return f"https://{m.group(1).lower()}.github.io/{m.group(2)}" if m else ""


def colab_edition(
    source: Path,
    executed: Path | None,
    bibliography: dict[str, tuple[str, str]],
    site_url: str = "",
    equations: dict[str, int] | None = None,
) -> tuple[nbformat.NotebookNode, list[str]]:
    """The Colab edition of one chapter and the problems found (unknown keys, missing values)."""
    from llmbook_utils.notebook import read_glued

    nb = nbformat.read(source, as_version=4)
    glued = read_glued(executed) if executed else None
    profile = build_profile(nbformat.read(executed, as_version=4)) if executed else None
    ctx = build_context(nb, bibliography, glued, site_url, equations)
    edition = copy.deepcopy(nb)
    for index, cell in enumerate(edition.cells):
        if cell.cell_type == "markdown":
            cell.source = convert_markdown(cell.source, index, ctx)
    title_cell = next(
        (c for c in edition.cells if c.cell_type == "markdown" and c.source.startswith("# ")), None
    )
    title = title_cell.source.splitlines()[0][2:].strip() if title_cell else source.stem
    page_url = f"{site_url}/chapters/{source.stem}.html" if site_url else ""
    note = nbformat.v4.new_markdown_cell(_note(title, profile, glued is not None, page_url))
    edition.cells.insert(0, note)
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    edition.metadata = {
        "kernelspec": nb.metadata.get("kernelspec") or kernelspec,
        "language_info": nb.metadata.get("language_info") or {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
        "accelerator": "GPU",  # Colab opens it on a GPU runtime; the `gpu` profile uses it
    }
    nbformat.validate(edition)
    return edition, ctx.missing


def main(argv: list[str] | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "colab")
    parser.add_argument(
        "--executed",
        type=Path,
        help="folder with executed chapters (default: the first of " + ", ".join(EXECUTED_DIRS),
    )
    parser.add_argument("chapters", nargs="*", type=Path, help="default: chapters/*.ipynb")
    args = parser.parse_args(argv)

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    bibliography = load_bibliography(ROOT / "book" / "references.bib")
    site_url = site_url_from_config(config)
    equations = book_equation_numbers(ROOT)
    chapters = args.chapters or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    (args.out / "chapters").mkdir(parents=True, exist_ok=True)
    for source in chapters:
        if args.executed:
            executed = args.executed / f"{source.stem}.ipynb"
            executed = executed if executed.exists() else None
        else:
            executed = executed_copy(source.stem)
        edition, missing = colab_edition(source, executed, bibliography, site_url, equations)
        target = args.out / "chapters" / source.name
        nbformat.write(edition, target)
        origin = (
            executed.relative_to(ROOT) if executed and executed.is_relative_to(ROOT) else executed
        )
        print(f"{target}  (values from {origin or 'no executed copy: phrases instead'})")
        for problem in missing:
            print(f"  warning: {source.name}: {problem}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
