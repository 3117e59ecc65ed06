"""The report site: notebooks executed side by side by papermill, then published as a book by
Sphinx with MyST-NB and the Sphinx Book Theme (contents, previous/next, search, offline MathJax).

    python -m utilities.reports notebooks/*.ipynb --output-dir reports [--no-execute] [-p N 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path

import matplotlib.image
import nbformat
import papermill
import yaml
from jupyter_client import AsyncKernelManager
from papermill.exceptions import PapermillExecutionError
from sphinx.cmd.build import build_main

CONCLUSION = "**Conclusion.**"
# Up to the first full stop (with any closing ** or bracket) that ends the text or is followed by
# a capital letter: "e.g. half" and "Rendle et al. (2020)" do not end a sentence.
FIRST_SENTENCE = re.compile(r".+?[.!?][*_)\]\x22\x27’”]*(?=\s+[A-Z]|\s*$)|.+")
THUMBNAILS, COLUMN_PIXELS = "thumbnails", 660  # about the book theme's article column, px
POLARS_SHAPE = re.compile(r"<small>shape: \([^)]*\)</small>")
POLARS_DTYPES = re.compile(r"</tr><tr>(?:<td>[^<]*</td>)+</tr></thead>")
QUOTED_CELL = re.compile(r"<td>&quot;(.*?)&quot;</td>")
PRINTED_SHAPE = re.compile(r"^shape: \([^)\n]*\)\n(?=┌)", re.MULTILINE)  # print(frame)'s first line
STOP = threading.Event()  # set on Ctrl-C: running kernels are killed, and no new one may run
KERNELS: set[AsyncKernelManager] = set()  # those started and not yet cleaned up
MATHJAX = Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent / "static"
SPHINX_CONF = {  # the book's conf.py; papermill has executed the notebooks already
    "project": "dotlab reports",
    "extensions": ["myst_nb"],
    "myst_enable_extensions": ["dollarmath", "amsmath"],
    "nb_execution_mode": "off",
    "html_theme": "sphinx_book_theme",
    "html_title": "dotlab reports",
    "author": "dotlab",
    "html_theme_options": {"navbar_persistent": []},  # one search box: the sidebar's
    "html_static_path": [str(MATHJAX)],  # its mathjax/ folder, copied into _static/
    "mathjax_path": "mathjax/tex-chtml.js",
    "html_show_search_summary": False,  # its pages fetched, which file:// does not allow
}


class ReportError(ValueError):
    """A notebook or an option that the site cannot be built from, said in one line each."""


class StoppableKernelManager(AsyncKernelManager):
    """A kernel manager listed in `KERNELS` while its kernel runs, so Ctrl-C can kill them all."""

    async def start_kernel(self, **kwargs: object) -> None:
        """Start the kernel, listed; killed at once when Ctrl-C came meanwhile."""
        KERNELS.add(self)
        await super().start_kernel(**kwargs)
        if STOP.is_set():
            await self.provisioner.kill()

    async def cleanup_resources(self, restart: bool = False) -> None:
        """Clean up, unlisted."""
        KERNELS.discard(self)
        await super().cleanup_resources(restart)


PAPERMILL = {
    "kernel_manager_class": StoppableKernelManager,
    # quiet: its warning about TCP, the interrupt jupyter_client sends at every shutdown, and
    # tornado's traceback when ipykernel flushes output into a socket it has just closed (a race
    # at shutdown, ipykernel#1518); a cell's errors reach the notebook by messages, not by logs
    "extra_arguments": [
        "--IPKernelApp.log_level=CRITICAL",
        '--IPKernelApp.logging_config={"loggers": {"tornado": {"level": "CRITICAL"}}}',
    ],
    "interrupt_on_timeout": True,  # the kernel is then idle when it is shut down
    "progress_bar": False,
}


def execute(path: Path, output: Path, parameters: dict, timeout: int) -> None:
    """Run `path` by papermill into `output`, in a fresh kernel in its folder, with `parameters`."""
    sys.stderr.write(f"executing {path}\n")  # one write: jobs side by side do not interleave
    folder = {"metadata": {"path": str(path.parent.resolve())}}
    try:
        papermill.execute_notebook(
            path, output, parameters, resources=folder, execution_timeout=timeout, **PAPERMILL
        )
    except PapermillExecutionError as error:
        what = f"failed with {error.ename}: {error.evalue}"
        if error.ename == "KeyboardInterrupt":  # interrupted on timeout
            what = f"ran past the {timeout} s cell timeout (--timeout SECONDS)"
        raise ReportError(f"{path}: cell In [{error.exec_count}] {what}") from None
    except Exception as error:  # nbclient's: a dead kernel, one that did not answer
        if STOP.is_set():
            raise
        raise ReportError(f"{path}: {type(error).__name__}: {error}".splitlines()[0]) from error


def run_notebook(path: Path, output: Path, parameters: dict, timeout: int | None) -> None:
    """Execute `path` into `output` (`timeout` None: copy it); one that failed marked so on top."""
    if timeout is None:
        shutil.copyfile(path, output)
        return
    try:
        execute(path, output, parameters, timeout)
    except ReportError as error:
        nb = nbformat.read(output, as_version=4) if output.exists() else None
        if nb and not nb.metadata.papermill.get("exception"):  # a dead or stuck kernel's
            nb.metadata.papermill.exception = True
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"**Not complete.** {error}"))
            nbformat.write(nb, output)
        raise


def saved_seconds(path: Path) -> float:
    """How long the notebook's saved run took, from its cells' timing metadata (0 without)."""
    seconds = 0.0
    for cell in nbformat.read(path, as_version=4).cells:
        stamps = cell.metadata.get("execution", {})
        if {"iopub.execute_input", "shell.execute_reply"} <= stamps.keys():
            start = datetime.fromisoformat(stamps["iopub.execute_input"])
            seconds += (
                datetime.fromisoformat(stamps["shell.execute_reply"]) - start
            ).total_seconds()
    return seconds


def run_notebooks(
    notebooks: list[Path], src: Path, parameters: dict, timeout: int | None, jobs: int
) -> tuple[dict[Path, str], list[Path]]:
    """Run each notebook into `src`, `jobs` at a time, the longest (by its saved run) first, so
    the longest does not start last: the errors, and those Ctrl-C stopped."""
    STOP.clear()
    stopped: list[Path] = []
    with ThreadPoolExecutor(jobs) as pool:
        args = (parameters, timeout)
        longest_first = sorted(notebooks, key=saved_seconds, reverse=True)
        run = {
            p: pool.submit(run_notebook, p, src / f"{p.stem}.ipynb", *args) for p in longest_first
        }
        try:
            while wait(run.values(), timeout=0.2).not_done:  # awake, for Ctrl-C to reach it
                pass
        except KeyboardInterrupt:
            STOP.set()
            pool.shutdown(wait=False, cancel_futures=True)
            stopped = [path for path, job in run.items() if not job.done()]
            for manager in list(KERNELS):
                asyncio.run(manager.provisioner.kill())
    for path in stopped:
        (src / f"{path.stem}.ipynb").unlink(missing_ok=True)
    errors = {p: job.exception() for p, job in run.items() if p not in stopped and job.exception()}
    if bug := next((e for e in errors.values() if not isinstance(e, ReportError)), None):
        raise bug  # not the notebook's fault: a bug, or a kernel that cannot start
    return {path: str(error) for path, error in errors.items()}, stopped


def read_headline(nb: nbformat.NotebookNode) -> str:
    """The first sentence of the Markdown, a cell's or a displayed one, starting **Conclusion.**"""
    for cell in nb.cells:
        outputs = [out.get("data", {}).get("text/markdown", "") for out in cell.get("outputs", [])]
        for text in [cell.source] if cell.cell_type == "markdown" else outputs:
            if text.strip().startswith(CONCLUSION):
                paragraphs = text.strip().removeprefix(CONCLUSION).split("\n\n")
                first = next((" ".join(p.split()) for p in paragraphs if p.strip()), "")
                return FIRST_SENTENCE.match(first).group(0) if first else ""
    return ""


def main_figure(nb: nbformat.NotebookNode) -> tuple[bytes, str, list[float] | None] | None:
    """The figure the cell tagged `main-figure` shows: its PNG, its caption (MyST-NB's
    `mystnb.figure.caption`) and the part a thumbnail shows (`dotlab.thumbnail`), if any."""
    for cell in nb.cells:
        if "main-figure" not in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if png := output.get("data", {}).get("image/png"):
                caption = cell.metadata.get("mystnb", {}).get("figure", {}).get("caption", "")
                box = cell.metadata.get("dotlab", {}).get("thumbnail")
                return base64.b64decode(png), caption, box
    return None


def write_thumbnail(png: bytes, box: list[float] | None, path: Path) -> int:
    """`png` to `path`, cut to `box` = [left, top, right, bottom] as fractions of its size; its
    width in pixels."""
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    if box is not None:
        height, width = image.shape[:2]
        numbers = len(box) == 4 and all(isinstance(x, int | float) for x in box)
        left, top, right, bottom = box if numbers else (0, 0, 0, 0)
        rows = slice(round(top * height), round(bottom * height))
        columns = slice(round(left * width), round(right * width))
        if not (numbers and 0 <= left < right <= 1 and 0 <= top < bottom <= 1):
            rows = slice(0, 0)
        image = image[rows, columns]
        if image.size == 0:
            raise ReportError(
                f"{path.stem}: dotlab.thumbnail {box!r} must be [left, top, right, bottom], "
                "fractions of the figure with left < right and top < bottom, a pixel or more."
            )
    path.parent.mkdir(exist_ok=True)
    matplotlib.image.imsave(path, image, cmap="gray")  # the colour map serves grey images only
    return image.shape[1]


def index_entry(
    number: int, src: Path, path: Path, errors: dict[Path, str], stems: list[str]
) -> str:
    """A chapter's line on the landing page: its link and headline (or its error), and the
    thumbnail of its main figure with the figure's caption."""
    link = f"{{doc}}`{path.stem}`" if path.stem in stems else f"`{path.name}`"
    if path in errors:
        return f"{number}. {link}: **did not complete:** `` {errors[path]} ``\n"
    nb = nbformat.read(src / f"{path.stem}.ipynb", as_version=4)
    headline = read_headline(nb)
    entry = f"{number}. {link}" + f": {headline}" * bool(headline) + "\n"
    if figure := main_figure(nb):
        png, caption, box = figure
        width = write_thumbnail(png, box, src / THUMBNAILS / f"{path.stem}.png")
        caption = " ".join(caption.split())  # one line, as the directive's options need
        shown = f"{width}px" if width < COLUMN_PIXELS else "100%"  # never shrunk below the column
        options = f":width: {shown}\n:target: {path.stem}.html\n"
        alt = caption.replace("`", "") or f"the main figure of {path.stem}"
        options += f":alt: {json.dumps(alt, ensure_ascii=False)}\n"  # quoted: '#' and quotes kept
        figure = f"```{{figure}} {THUMBNAILS}/{path.stem}.png\n{options}\n{caption}\n```"
        entry += "\n" + textwrap.indent(figure, " " * len(f"{number}. ")) + "\n"  # in the item
    return entry


def plain_tables(path: Path) -> None:
    """Polars' tables in the notebook at `path` as a reader wants them: no shape line (printed
    frames too), no row of data types, strings without quotes."""
    nb = nbformat.read(path, as_version=4)
    for output in (out for cell in nb.cells for out in cell.get("outputs", [])):
        if output.get("output_type") == "stream":  # a printed frame: its table, not its shape
            output["text"] = PRINTED_SHAPE.sub("", output["text"])
        html = output.get("data", {}).get("text/html", "")
        if 'class="dataframe"' in html:
            html = POLARS_DTYPES.sub("</tr></thead>", POLARS_SHAPE.sub("", html))
            output["data"]["text/html"] = QUOTED_CELL.sub(r"<td>\1</td>", html)
    nbformat.write(nb, path)


def write_book(src: Path, notebooks: list[Path], errors: dict[Path, str], parameters: dict) -> None:
    """The landing page, the chapters in order, each with its headline or error; and conf.py."""
    stems = [path.stem for path in notebooks if (src / f"{path.stem}.ipynb").exists()]
    lines = ["# dotlab reports\n", "```{toctree}\n:hidden:\n", *stems, "```\n"]
    if parameters:
        lines += ["Run with " + ", ".join(f"`{k} = {v!r}`" for k, v in parameters.items()) + "\n"]
    for number, path in enumerate(notebooks, 1):
        lines.append(index_entry(number, src, path, errors, stems))
    (src / "index.md").write_text("\n".join(lines) + "\n")
    (src / "conf.py").write_text("".join(f"{k} = {v!r}\n" for k, v in SPHINX_CONF.items()))


def build_book(src: Path, output_dir: Path, jobs: int) -> None:
    """Build the book of `src` and move it to `output_dir`, replacing a site built there before."""
    html, doctrees = src.parent / "html", src.parent / "doctrees"
    if build_main(["-q", "-j", str(jobs), "-d", str(doctrees), str(src), str(html)]):
        raise ReportError(
            f"Sphinx could not build the site (its error is above); {output_dir} kept"
        )
    for notebook in src.glob("*.ipynb"):  # the executed notebooks beside their pages
        shutil.copyfile(notebook, html / notebook.name)
    if output_dir.exists():
        os.replace(output_dir, src.parent / "previous")  # removed with the temporary folder
    os.replace(html, output_dir)


def check(notebooks: list[Path], output_dir: Path, parameters: dict, execute: bool) -> None:
    """Raise, before anything is written, for a missing notebook, a parameter it lacks, or an
    output folder that is neither empty nor a site built here."""
    if not notebooks or len({path.stem for path in notebooks} - {"index"}) < len(notebooks):
        raise ReportError("Give notebooks of distinct names, none named 'index'.")
    if parameters and not execute:
        raise ReportError("Parameters take effect only when the notebooks are executed.")
    if next(output_dir.glob("*"), None) and not (output_dir / ".buildinfo").exists():
        raise ReportError(f"{output_dir}: not empty and not a site built here; pick another.")
    for path in notebooks:
        if not path.is_file():
            raise ReportError(f"{path}: no such notebook.")
        known = papermill.inspect_notebook(path) if parameters else {}
        if unknown := [name for name in parameters if name not in known]:
            its = f"its parameters are {', '.join(known)}" if known else "it has none"
            raise ReportError(f"{path}: unknown parameter {', '.join(unknown)}; {its}.")


def build_site(
    notebooks: list[Path],
    output_dir: Path,
    *,
    execute: bool = True,
    parameters: dict | None = None,
    timeout: int = 3600,
    jobs: int | None = None,
) -> Path:
    """Execute the notebooks, `jobs` at a time, and publish them as a book in `output_dir`."""
    notebooks, parameters = [Path(path) for path in notebooks], parameters or {}
    jobs = jobs or os.cpu_count() or 1
    check(notebooks, output_dir, parameters, execute)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output_dir.name}-", dir=output_dir.parent) as tmp:
        (src := Path(tmp) / "src").mkdir()
        args = (parameters, timeout if execute else None, jobs)
        errors, stopped = run_notebooks(notebooks, src, *args)
        if built := [path for path in notebooks if path not in stopped]:
            for path in src.glob("*.ipynb"):
                plain_tables(path)
            write_book(src, built, errors, parameters)
            build_book(src, output_dir, jobs)
    if stopped:
        kept = f"kept the {len(built)} others in {output_dir}" if built else "kept nothing"
        raise KeyboardInterrupt(f"interrupted {', '.join(p.name for p in stopped)}; {kept}")
    if errors:
        lines = [f"{error} (see {output_dir / path.stem}.html)" for path, error in errors.items()]
        raise ReportError("\n".join(lines))
    return output_dir / "index.html"


def parse_value(text: str) -> object:
    """A `-p` value as papermill's command line reads it: True, False, None, int, float, str."""
    for kind in ({"True": True, "False": False, "None": None}.__getitem__, int, float):
        try:
            return kind(text)
        except (KeyError, ValueError):
            pass
    return text


def positive(text: str) -> int:
    """`text` as a positive whole number, for argparse."""
    if not text.isdecimal() or int(text) < 1:
        raise ValueError(text)
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, its parameters read as papermill's are (`-p` over `-y`)."""
    parser = argparse.ArgumentParser(prog="python -m utilities.reports", description=__doc__)
    add = parser.add_argument
    add("notebooks", nargs="+", type=Path)
    add("--output-dir", type=Path, default=Path("reports"))
    add("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    add("-y", "--parameters-yaml", type=yaml.safe_load, default={}, metavar="YAML")
    add("--execute", action=argparse.BooleanOptionalAction, default=True, help="(default)")
    add("--timeout", type=int, default=3600, help="seconds a cell may run (3600)")
    add("--jobs", type=positive, metavar="N", help="notebooks side by side (default: the cores)")
    args = parser.parse_args(argv)
    if not isinstance(args.parameters_yaml, dict):
        parser.error("-y: expected a YAML mapping such as 'SEEDS: [0, 1]'")
    args.parameters = args.parameters_yaml | {k: parse_value(v) for k, v in args.parameter}
    return args


def main(argv: list[str] | None = None) -> None:
    """Build the site as the command line says; errors and Ctrl-C in one line each."""
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # kernels side by side: no spinning
    logging.getLogger("papermill").setLevel(logging.CRITICAL)  # the error lines say it
    options = {"execute": args.execute, "timeout": args.timeout, "jobs": args.jobs}
    try:
        index = build_site(args.notebooks, args.output_dir, parameters=args.parameters, **options)
    except ReportError as error:
        print("\n".join(f"error: {line}" for line in str(error).splitlines()), file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as interrupt:  # one line saying what was kept; no traceback
        print(str(interrupt) or "interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"wrote {index}")


if __name__ == "__main__":
    main()
