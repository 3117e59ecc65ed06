"""The report site: every notebook as an HTML page, and an index of questions, headline results
and main-figure thumbnails read from the (executed) notebooks.

    python -m utilities.reports notebooks/*.ipynb --output-dir reports
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html
from PIL import Image
from tqdm.auto import tqdm

CONCLUSION = "**Conclusion.**"
MAIN_FIGURE_TAG = "main-figure"
THUMBNAIL_WIDTH = 360
CELL_TIMEOUT_S = 600

# The lab template without scripts from CDNs (the notebooks use no LaTeX, widgets or mermaid),
# so pages load complete offline, plus a link back to the index.
PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}
{{ super() }}
<nav style="padding: 1em 0"><a href="index.html">&larr; All notebooks</a></nav>
{%- endblock body_header -%}
"""

INDEX_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
article { display: flex; gap: 1.5em; border-top: 1px solid #ddd; padding: 1.2em 0; }
article img { width: 360px; max-width: 40vw; height: auto; border: 1px solid #eee; }
article h2 { font-size: 1.2em; margin-top: 0; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


class ReportError(ValueError):
    """A notebook lacks what its index entry is read from (title, conclusion or figure)."""


@dataclass(frozen=True)
class Entry:
    """One notebook's line in the index."""

    stem: str
    question: str
    headline: str  # Markdown


def read_question(nb: nbformat.NotebookNode, name: str) -> str:
    """The notebook's title: the first `# ` heading of its markdown cells."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line.removeprefix("# ").strip()
    raise ReportError(f"{name}: no title heading ('# ...') in any markdown cell.")


def iter_outputs(nb: nbformat.NotebookNode):
    """`(cell, output)` for every output of every code cell, in order."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                yield cell, output


def read_headline(nb: nbformat.NotebookNode, name: str) -> str:
    """The first paragraph of the conclusion the notebook displays (Markdown, without the label)."""
    for _, output in iter_outputs(nb):
        text = output.get("data", {}).get("text/markdown", "").strip()
        if text.startswith(CONCLUSION):
            return text.removeprefix(CONCLUSION).strip().split("\n\n")[0]
    raise ReportError(
        f"{name}: no output starting with {CONCLUSION!r}; was the notebook executed? "
        "(build with --execute, the default)"
    )


def read_main_figure(nb: nbformat.NotebookNode, name: str) -> bytes:
    """The PNG of the cell tagged `main-figure`, else the last figure: the one the house layout
    puts just before the results and the conclusion."""
    figures = [
        (cell, output["data"]["image/png"])
        for cell, output in iter_outputs(nb)
        if "image/png" in output.get("data", {})
    ]
    if not figures:
        raise ReportError(f"{name}: no figure (image/png output) to show in the index.")
    tagged = [png for cell, png in figures if MAIN_FIGURE_TAG in cell.metadata.get("tags", [])]
    return base64.b64decode((tagged or [figures[-1][1]])[0])


def make_thumbnail(png: bytes, width: int = THUMBNAIL_WIDTH) -> bytes:
    """`png` scaled down to `width` pixels wide (never up), as PNG bytes."""
    image = Image.open(io.BytesIO(png))
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def execute_notebook(nb: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel started in `folder`; raises at the first failing cell."""
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(folder)}}
    )
    return client.execute()


def render_page(nb: nbformat.NotebookNode, stem: str) -> str:
    """The notebook as a self-contained HTML page (figures inline) linking back to the index."""
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"dotlab.html.j2": PAGE_TEMPLATE})],
        template_file="dotlab.html.j2",
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": stem}})
    return body


def render_index(entries: Sequence[Entry], source: str) -> str:
    """The index page: per notebook its question (linked), thumbnail and headline result."""
    articles = "\n".join(
        f'<article id="{e.stem}">\n'
        f'<a href="{e.stem}.html"><img src="thumbnails/{e.stem}.png"'
        f' alt="Main figure of {html.escape(e.stem)}"></a>\n'
        f'<div><h2><a href="{e.stem}.html">{render_inline(e.question)}</a></h2>\n'
        f'<div class="headline">{markdown2html(e.headline)}</div></div>\n</article>'
        for e in entries
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>dotlab reports</title>\n<style>{INDEX_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>dotlab reports</h1>\n<p>Each notebook's question, its conclusion as {source}, "
        "and its main figure. Open a notebook for the full experiment.</p>\n"
        f"{articles}\n</body>\n</html>\n"
    )


def render_inline(markdown: str) -> str:
    """One line of Markdown as HTML without the enclosing paragraph."""
    return markdown2html(markdown).strip().removeprefix("<p>").removesuffix("</p>")


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, so `path` is never half-written."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def build_page(path: Path, output_dir: Path, *, execute: bool) -> Entry:
    """Write one notebook's page and thumbnail; return its index entry."""
    nb = nbformat.read(path, as_version=4)
    if execute:
        try:
            nb = execute_notebook(nb, path.parent)
        except CellExecutionError as error:
            raise ReportError(f"{path}: a cell failed while executing it:\n{error}") from error
    entry = Entry(path.stem, read_question(nb, path.name), read_headline(nb, path.name))
    thumbnail = make_thumbnail(read_main_figure(nb, path.name))
    write_atomically(output_dir / "thumbnails" / f"{path.stem}.png", thumbnail)
    write_atomically(output_dir / f"{path.stem}.html", render_page(nb, path.stem).encode())
    return entry


def build_site(notebooks: Sequence[Path], output_dir: Path, *, execute: bool = True) -> Path:
    """Pages, thumbnails and `index.html` (written last, only when every notebook built)."""
    if not notebooks:
        raise ReportError("No notebooks given to build the reports from.")
    for path in notebooks:
        if not Path(path).is_file():
            raise ReportError(f"{path}: no such notebook.")
    (output_dir / "thumbnails").mkdir(parents=True, exist_ok=True)
    entries = [
        build_page(Path(path), output_dir, execute=execute)
        for path in tqdm(notebooks, desc="executing" if execute else "rendering", unit="notebook")
    ]
    source = "computed by executing the notebook" if execute else "saved in the notebook"
    index = output_dir / "index.html"
    write_atomically(index, render_index(entries, source).encode())
    return index


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utilities.reports", description=__doc__)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output-dir", type=Path, default=Path("reports"))
    parser.add_argument(
        "--execute",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="execute each notebook first (default), or render its saved outputs",
    )
    args = parser.parse_args(argv)
    index = build_site(args.notebooks, args.output_dir, execute=args.execute)
    print(f"wrote {index} and {len(args.notebooks)} notebook pages")


if __name__ == "__main__":
    main()
