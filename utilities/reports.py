"""The report site: every notebook as an HTML page, and an index of questions, headline results
and main-figure thumbnails read from the (executed) notebooks.

    python -m utilities.reports notebooks/*.ipynb --output-dir reports
    python -m utilities.reports notebooks/04_*.ipynb -p N_FACTORS 8 --output-dir reports-n8
    python -m utilities.reports notebooks/05_*.ipynb -y "SEEDS: [0, 1, 2]" --output-dir reports-s3

A notebook that fails is marked on the index and the others still build; Ctrl-C keeps the pages
already built. Every file is written under a temporary name and renamed into place once complete.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import inspect
import io
import logging
import os
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill
import yaml
from jinja2 import DictLoader
from jupyter_client import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html
from papermill.exceptions import PapermillExecutionError
from PIL import Image
from traitlets.config import Config

CONCLUSION = "**Conclusion.**"
MAIN_FIGURE_TAG = "main-figure"
THUMBNAIL_WIDTH = 360
CELL_TIMEOUT_S = 600
# ipykernel warns at every start that its TCP sockets are unencrypted; a kernel on local (IPC)
# sockets, private to this user, has nothing to warn about. Windows has no IPC transport.
KERNEL_CONFIG = Config({"KernelManager": {"transport": "ipc" if os.name == "posix" else "tcp"}})
# A cell past the timeout is interrupted (a KeyboardInterrupt in the cell, saved with it), so the
# kernel is idle when it is shut down rather than failing to reply on closed sockets.
ON_TIMEOUT = {"interrupt_on_timeout": True, "error_on_timeout": {"ename": "CellTimeoutError"}}
STOP = threading.Event()  # set on Ctrl-C: running kernels are killed, and no new one may run
KERNELS: set[AsyncKernelManager] = set()  # those started and not yet cleaned up

# The lab template without scripts from CDNs (the notebooks use no LaTeX, widgets or mermaid),
# so pages load complete offline, plus a header bar: back to the index, the title, the parameters.
PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style>
.dotlab-header { position: sticky; top: 0; z-index: 10; display: flex; flex-wrap: wrap;
  align-items: baseline; gap: 0.4em 1.2em; padding: 0.7em 1.2em; background: #f6f8fa;
  border-bottom: 1px solid #d0d7de; font: 1rem/1.4 system-ui, sans-serif; }
.dotlab-header a { font-weight: 600; color: #0b57d0; text-decoration: none; white-space: nowrap; }
.dotlab-header a:hover { text-decoration: underline; }
.dotlab-header .title { font-weight: 600; color: #222; }
.dotlab-header p { margin: 0; color: #444; }
</style>{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.dotlab_header }}
{%- endblock body_header -%}
{% block data_png scoped %}
{%- set alt = output | get_metadata('alt', 'image/png') | escape_html -%}
{{ super() | replace('<img ', '<img alt="' ~ alt ~ '" ', 1) }}
{%- endblock data_png %}
"""

INDEX_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
article { display: flex; gap: 1.5em; border-top: 1px solid #ddd; padding: 1.2em 0; }
article img { width: 360px; max-width: 40vw; height: auto; border: 1px solid #eee; }
article h2 { font-size: 1.2em; margin-top: 0; }
code { background: #f4f4f4; padding: 0 0.2em; }
article.failed h2 { color: #b3261e; }
"""


class ReportError(ValueError):
    """A notebook that cannot be built into the site (missing, failing, or lacking what its
    index entry is read from), said in one line."""


class BuildFailed(ReportError):
    """Notebooks that failed while the others were built and indexed: one line each."""

    def __init__(self, errors: Sequence[ReportError]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = list(errors)


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C during a build, saying which notebooks it stopped and what was kept."""


class StoppableKernelManager(AsyncKernelManager):
    """A kernel manager listed in `KERNELS` while its kernel runs, so Ctrl-C can kill them all."""

    def _ip_default(self) -> str:
        """IPC sockets under a path of their own, not `kernel-ipc-N` in the working folder, where
        kernels started side by side (or in another folder than this process) would clash."""
        if self.transport == "ipc":
            os.makedirs(jupyter_runtime_dir(), mode=0o700, exist_ok=True)
            return os.path.join(jupyter_runtime_dir(), f"dotlab-{uuid.uuid4()}-ipc")
        return super()._ip_default()

    async def start_kernel(self, **kwargs: object) -> None:
        KERNELS.add(self)
        await super().start_kernel(**kwargs)
        if STOP.is_set():  # Ctrl-C came while it started: `kill_kernels` may have missed it
            await self.provisioner.kill()

    async def cleanup_resources(self, restart: bool = False) -> None:
        KERNELS.discard(self)
        await super().cleanup_resources(restart)


def kill_kernels() -> None:
    """Kill every running kernel and what it started, so the threads driving them stop."""
    for manager in list(KERNELS):
        if provisioner := manager.provisioner:
            asyncio.run(provisioner.kill())


@dataclass(frozen=True)
class Entry:
    """One notebook's line in the index."""

    stem: str
    question: str
    headline: str  # Markdown
    parameters: dict[str, object] = field(default_factory=dict)  # injected with -p
    figure_alt: str = ""  # the main figure's


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
    """The first paragraph of the conclusion: a Markdown cell, or Markdown a cell displays,
    starting with the label (without it)."""
    for cell in nb.cells:
        outputs = cell.get("outputs", []) if cell.cell_type == "code" else []
        texts = [out.get("data", {}).get("text/markdown", "") for out in outputs]
        for text in [cell.source] if cell.cell_type == "markdown" else texts:
            if text.strip().startswith(CONCLUSION):
                return text.strip().removeprefix(CONCLUSION).strip().split("\n\n")[0]
    raise ReportError(
        f"{name}: no Markdown starting with {CONCLUSION!r}; was the notebook executed? "
        "(build with --execute, the default)"
    )


def label_figures(nb: nbformat.NotebookNode, question: str) -> list:
    """`(cell, output)` of every figure, each output's metadata given an `alt` text where the
    kernel recorded none (see `add_titles_as_alt_text`): its place in the notebook."""
    figures = [(c, out) for c, out in iter_outputs(nb) if "image/png" in out.get("data", {})]
    plain = question.replace("`", "").replace("*", "")
    for number, (_, output) in enumerate(figures, 1):
        output.metadata.setdefault("alt", f"Figure {number} of {len(figures)}: {plain}")
    return figures


def read_main_figure(figures: list, name: str) -> nbformat.NotebookNode:
    """The figure output of the cell tagged `main-figure`, else the last figure: the one the house
    layout puts just before the results and the conclusion."""
    if not figures:
        raise ReportError(f"{name}: no figure (image/png output) to show in the index.")
    tagged = [out for cell, out in figures if MAIN_FIGURE_TAG in cell.metadata.get("tags", [])]
    return (tagged or [figures[-1][1]])[0]


def make_thumbnail(png: bytes, width: int = THUMBNAIL_WIDTH) -> bytes:
    """`png` scaled down to `width` pixels wide (never up), as PNG bytes."""
    image = Image.open(io.BytesIO(png))
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def add_titles_as_alt_text() -> None:
    """Run in the kernel: every figure the inline backend shows records its titles (the figure's,
    then each axes') as `alt` in its output's metadata, for the page's alt text."""
    import matplotlib_inline.backend_inline as inline

    fetch = inline._fetch_figure_metadata  # the metadata the backend displays a figure with

    def fetch_with_alt(fig):
        titles = [fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)]
        alt = "; ".join(title for title in titles if title)
        return {**(fetch(fig) or {}), "alt": alt} if alt else fetch(fig)

    inline._fetch_figure_metadata = fetch_with_alt


# The kernel runs this before the notebook's first cell, outside its history and its namespace.
KERNEL_ARGS = [
    f"--IPKernelApp.exec_lines={inspect.getsource(add_titles_as_alt_text)}"
    "add_titles_as_alt_text()\ndel add_titles_as_alt_text"
]


def parse_value(text: str) -> object:
    """A `-p` value read as papermill's command line reads it (`papermill.cli._resolve_type`)."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_parameters(pairs: Sequence[Sequence[str]], yaml_text: str | None) -> dict:
    """The `-y` YAML mapping updated with each `-p NAME VALUE`, as papermill's command line."""
    try:
        parameters = yaml.safe_load(yaml_text or "{}")
    except yaml.YAMLError as error:
        raise ReportError(f"-y: not YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(parameters, dict):
        raise ReportError(f"-y: expected a YAML mapping such as 'SEEDS: [0, 1]', got {yaml_text!r}")
    return parameters | {name: parse_value(value) for name, value in pairs}


def check_parameters(path: Path, parameters: Mapping[str, object]) -> None:
    """Raise, listing the notebook's parameters, when it has none of some `parameters` name."""
    known = papermill.inspect_notebook(path)
    unknown = [name for name in parameters if name not in known]
    if unknown:
        its = f"its parameters are {', '.join(known)}" if known else "it has none"
        raise ReportError(
            f"{path}: unknown parameter {', '.join(unknown)}; {its} (the cell tagged 'parameters')."
        )


def execute_notebook(
    path: Path, output: Path, parameters: Mapping[str, object], timeout: int, progress: bool
) -> nbformat.NotebookNode:
    """Run `path` in a fresh kernel in its folder with `parameters` injected (papermill's way:
    a cell after the one tagged `parameters`), saving the executed copy at `output` once it ran
    to the end; one that failed is saved marked so at its top, one interrupted not at all."""
    if output.resolve() == path.resolve():
        raise ReportError(f"{path}: the executed copy would overwrite it; pick another folder.")
    partial = partial_path(output)  # papermill saves the notebook there after every cell
    try:
        nb = run_papermill(path, output, parameters, timeout, progress)
        os.replace(partial, output)
        return nb
    except ReportError as error:
        if partial.exists() and not STOP.is_set():
            keep_failed_notebook(partial, output, error)
        raise
    finally:
        partial.unlink(missing_ok=True)


def run_papermill(
    path: Path, output: Path, parameters: Mapping[str, object], timeout: int, progress: bool
) -> nbformat.NotebookNode:
    """Execute `path` with papermill into `output`'s partial file; its errors said in one line."""
    try:
        return papermill.execute_notebook(
            path,
            partial_path(output),
            parameters=dict(parameters),
            # the kernel's working folder, without papermill's os.chdir (one for all threads)
            resources={"metadata": {"path": str(path.parent.resolve())}},
            kernel_manager_class=StoppableKernelManager,
            config=KERNEL_CONFIG,
            extra_arguments=KERNEL_ARGS,
            progress_bar=progress,
            execution_timeout=timeout,
            **ON_TIMEOUT,
        )
    except CellTimeoutError as error:  # the kernel did not answer the interrupt
        raise ReportError(timeout_message(path, "a cell", timeout)) from error
    except DeadKernelError as error:
        raise ReportError(
            f"{path}: the kernel died while running a cell (out of memory?); the notebook as far "
            f"as it ran is {output}"
        ) from error
    except PapermillExecutionError as error:
        code = [line for line in error.source.splitlines() if line.strip()[:1] not in ("", "#")]
        cell = f"cell In [{error.exec_count}] ({(code or [''])[0]!r})"
        if error.ename in ("KeyboardInterrupt", "CellTimeoutError"):  # interrupted on timeout
            raise ReportError(timeout_message(path, cell, timeout)) from error
        raise ReportError(
            f"{path}: {cell} failed with {error.ename}: {error.evalue} "
            f"(the executed notebook, traceback included, is {output})"
        ) from error


def keep_failed_notebook(partial: Path, output: Path, error: ReportError) -> None:
    """Move the notebook as far as it ran to `output`, marked failed at its top (papermill marks
    a failing cell's; a dead or stuck kernel's it leaves with every cell marked completed)."""
    nb = nbformat.read(partial, as_version=4)
    if not nb.metadata.papermill.get("exception"):
        nb.metadata.papermill.exception = True
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"**Not complete.** {error}"))
    write_atomically(output, nbformat.writes(nb).encode())


def timeout_message(path: Path, cell: str, timeout: int) -> str:
    """The one line for a cell that ran past `timeout`, saying how to raise it."""
    return f"{path}: {cell} ran past the {timeout} s cell timeout; raise it with --timeout SECONDS"


def read_parameters(nb: nbformat.NotebookNode) -> dict[str, object]:
    """The parameters papermill injected into an executed notebook (none: its defaults)."""
    return dict(nb.metadata.get("papermill", {}).get("parameters") or {})


def render_page(nb: nbformat.NotebookNode, entry: Entry) -> str:
    """The notebook as a self-contained HTML page (figures inline) under a header bar."""
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"dotlab.html.j2": PAGE_TEMPLATE})],
        template_file="dotlab.html.j2",
    )
    header = (
        '<header class="dotlab-header"><a href="index.html">&larr; All notebooks</a>'
        f'<span class="title">{render_inline(entry.question)}</span>'
        f"{render_parameters(entry)}</header>"
    )
    resources = {"metadata": {"name": entry.stem}, "dotlab_header": header}
    return exporter.from_notebook_node(nb, resources=resources)[0]


def render_index(outcomes: Mapping[Path, Entry | ReportError], source: str) -> str:
    """The index page: per notebook its question (linked), thumbnail and headline result, or
    the error that stopped it."""
    articles = "\n".join(render_article(path, outcome) for path, outcome in outcomes.items())
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>dotlab reports</title>\n<style>{INDEX_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>dotlab reports</h1>\n<p>Each notebook's question, its conclusion as {source}, "
        "and its main figure. Open a notebook for the full experiment.</p>\n"
        f"{articles}\n</body>\n</html>\n"
    )


def render_article(path: Path, e: Entry | ReportError) -> str:
    """One notebook on the index: linked question, thumbnail and headline; or name and error."""
    if isinstance(e, ReportError):
        return (
            f'<article id="{path.stem}" class="failed">\n<div><h2>{html.escape(path.name)} '
            f'did not build</h2>\n<p class="error">{html.escape(str(e))}</p></div>\n</article>'
        )
    return (
        f'<article id="{e.stem}">\n'
        f'<a href="{e.stem}.html"><img src="thumbnails/{e.stem}.png"'
        f' alt="{html.escape(e.figure_alt)}"></a>\n'
        f'<div><h2><a href="{e.stem}.html">{render_inline(e.question)}</a></h2>\n'
        f'<div class="headline">{markdown2html(e.headline)}</div>{render_parameters(e)}</div>\n'
        "</article>"
    )


def render_parameters(entry: Entry) -> str:
    """The values a page was run with, e.g. `Run with N_FACTORS = 8`; nothing for the defaults."""
    values = ", ".join(
        f"<code>{html.escape(f'{k} = {v!r}')}</code>" for k, v in entry.parameters.items()
    )
    return f'<p class="parameters">Run with {values}</p>' if values else ""


def render_inline(markdown: str) -> str:
    """One line of Markdown as HTML without the enclosing paragraph."""
    return markdown2html(markdown).strip().removeprefix("<p>").removesuffix("</p>")


def partial_path(path: Path) -> Path:
    """The temporary name beside `path` that a file is written under until complete."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, so `path` is never half-written."""
    partial = partial_path(path)
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def build_page(
    path: Path,
    output_dir: Path,
    parameters: Mapping[str, object],
    timeout: int | None,
    progress: bool = False,
) -> Entry:
    """Write one notebook's page and thumbnail (and, executed, the notebook); return its entry.

    `timeout` None: render the saved outputs without executing."""
    if timeout is None:
        nb = nbformat.read(path, as_version=4)
    else:
        sys.stderr.write(f"executing {path}\n")  # one write: jobs side by side do not interleave
        output = output_dir / f"{path.stem}.ipynb"
        nb = execute_notebook(path, output, parameters, timeout, progress)
    question, headline = read_question(nb, path.name), read_headline(nb, path.name)
    main_figure = read_main_figure(label_figures(nb, question), path.name)
    alt = main_figure.metadata["alt"]
    entry = Entry(path.stem, question, headline, read_parameters(nb), alt)
    thumbnail = make_thumbnail(base64.b64decode(main_figure.data["image/png"]))
    write_atomically(output_dir / "thumbnails" / f"{path.stem}.png", thumbnail)
    write_atomically(output_dir / f"{path.stem}.html", render_page(nb, entry).encode())
    return entry


def build_site(
    notebooks: Sequence[Path],
    output_dir: Path,
    *,
    execute: bool = True,
    parameters: Mapping[str, object] | None = None,
    timeout: int = CELL_TIMEOUT_S,
    jobs: int | None = None,
) -> Path:
    """Pages, thumbnails, executed notebooks and `index.html`, `jobs` notebooks at a time (None:
    one per CPU core), each with the same `parameters`. The index lists the pages built and marks
    the notebooks that failed; then failures are raised as one `BuildFailed`, Ctrl-C as
    `BuildInterrupted`."""
    notebooks, parameters = [Path(path) for path in notebooks], parameters or {}
    check_notebooks(notebooks, parameters, execute)
    jobs = check_jobs(os.cpu_count() or 1 if jobs is None else jobs)
    (output_dir / "thumbnails").mkdir(parents=True, exist_ok=True)
    run_for = timeout if execute else None
    outcomes, stopped = build_pages(notebooks, output_dir, parameters, run_for, jobs)
    built, index = sum(isinstance(o, Entry) for o in outcomes.values()), output_dir / "index.html"
    if built:
        source = "computed by executing the notebook" if execute else "saved in the notebook"
        write_atomically(index, render_index(outcomes, source).encode())
    if stopped:
        names = ", ".join(path.name for path in stopped)
        raise BuildInterrupted(f"interrupted while building {names}; {describe_kept(built, index)}")
    errors = [outcome for outcome in outcomes.values() if isinstance(outcome, ReportError)]
    if errors:
        raise BuildFailed(errors) from errors[0]
    return index


def describe_kept(built: int, index: Path) -> str:
    """What an interrupted build leaves, e.g. `kept 2 built pages and reports/index.html`."""
    return f"kept {built} built page{'s' * (built != 1)} and {index}" if built else "kept no page"


def check_notebooks(notebooks: list[Path], parameters: Mapping[str, object], execute: bool) -> None:
    """Raise, before anything is written, for a missing notebook or a parameter it lacks."""
    if not notebooks:
        raise ReportError("No notebooks given to build the reports from.")
    if parameters and not execute:
        raise ReportError("Parameters take effect only when the notebooks are executed.")
    for path in notebooks:
        if not path.is_file():
            raise ReportError(f"{path}: no such notebook.")
        if parameters:
            check_parameters(path, parameters)


def check_jobs(jobs: int | str) -> int:
    """`jobs` as a positive whole number of notebooks to build at a time, else a one-line error."""
    if not str(jobs).isdecimal() or int(jobs) < 1:
        raise ReportError(f"--jobs: expected a positive whole number of notebooks, got {jobs!r}.")
    return int(jobs)


def build_pages(
    notebooks: list[Path],
    output_dir: Path,
    parameters: Mapping[str, object],
    timeout: int | None,
    jobs: int,
) -> tuple[dict[Path, Entry | ReportError], list[Path]]:
    """Each notebook's entry or error, built `jobs` at a time in threads (each kernel is a process
    of its own), in the order given; and the notebooks Ctrl-C stopped before they finished."""
    STOP.clear()
    stopped: list[Path] = []
    with ThreadPoolExecutor(jobs) as pool:
        progress = jobs == 1 and sys.stderr.isatty()
        job = {
            p: pool.submit(build_page, p, output_dir, parameters, timeout, progress)
            for p in notebooks
        }
        try:
            while wait(job.values(), timeout=0.2).not_done:  # waking, for Ctrl-C to be handled
                pass  # (the signal may reach a worker thread, which only flags it for this one)
        except KeyboardInterrupt:
            STOP.set()
            pool.shutdown(wait=False, cancel_futures=True)
            stopped = [path for path, future in job.items() if not future.done()]
            kill_kernels()
    outcomes = {p: f.exception() or f.result() for p, f in job.items() if not f.cancelled()}
    stopped = [path for path in stopped if not isinstance(outcomes[path], Entry)]
    for path, outcome in outcomes.items():
        if path not in stopped and not isinstance(outcome, Entry | ReportError):
            raise outcome  # not the notebook's fault: a bug, or a kernel that cannot start
    return {p: outcome for p, outcome in outcomes.items() if p not in stopped}, stopped


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m utilities.reports", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output-dir", type=Path, default=Path("reports"))
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="inject NAME = VALUE after the notebook's 'parameters' cell (VALUE as papermill "
        "reads it: True, False, None, an int, a float, else a string); repeatable",
    )
    parser.add_argument(
        "-y",
        "--parameters-yaml",
        metavar="YAML",
        help="more parameters as a YAML mapping, e.g. "
        "'SEEDS: [0, 1, 2]' (for lists and mappings; -p overrides)",
    )
    parser.add_argument(
        "--execute",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="execute each notebook first (default), or render its saved outputs",
    )
    parser.add_argument(
        "--timeout", type=int, default=CELL_TIMEOUT_S, help="seconds a cell may run (%(default)s)"
    )
    parser.add_argument(
        "--jobs",
        metavar="N",
        help="notebooks executed side by side, each in its own kernel (default: the CPU cores, "
        f"{os.cpu_count()})",
    )
    parser.add_argument("--verbose", action="store_true", help="an error's full traceback")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # Kernels side by side: OpenMP threads that spin while waiting (its default) would starve
    # each other; measured 25x slower with two kernels of two threads on two cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not args.verbose:  # papermill logs a timeout's interrupt as errors; the error line says it
        logging.getLogger("papermill").setLevel(logging.CRITICAL)
    try:
        parameters = parse_parameters(args.parameter, args.parameters_yaml)
        index = build_site(
            args.notebooks,
            args.output_dir,
            execute=args.execute,
            parameters=parameters,
            timeout=args.timeout,
            jobs=None if args.jobs is None else check_jobs(args.jobs),
        )
    except ReportError as error:
        if args.verbose:
            raise
        for each in error.errors if isinstance(error, BuildFailed) else [error]:
            print(f"error: {each}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as interrupt:  # one line saying what was kept; no traceback
        print(str(interrupt) or "interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"wrote {index} and {len(args.notebooks)} notebook pages")


if __name__ == "__main__":
    main()
