"""The report site, built from tiny hand-made notebooks: a Sphinx book with the chapters in the
order given, previous/next links, the executed notebooks beside their pages, failures shown."""

from __future__ import annotations

import base64
import html
import io
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import nbformat
import numpy as np
import polars as pl
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from processes import is_running, wait_for

from utilities.reports import ReportError, build_site, main, parse_value

REPO_ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(path: Path, *cells) -> Path:
    nbformat.write(new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC}), path)
    return path


def saved_notebook(path: Path, title: str, conclusion: str) -> Path:
    """A notebook as saved after a run: a title, a displayed conclusion, never executed here."""
    shown = new_output("display_data", data={"text/markdown": conclusion, "text/plain": "<Md>"})
    return write_notebook(
        path,
        new_markdown_cell(f"# {title}\n\nSome words, and $a \\cdot b = \\sum_i a_i b_i$."),
        new_code_cell("display(Markdown(...))", outputs=[shown]),
    )


def parameterised_notebook(path: Path) -> Path:
    """A tiny notebook whose conclusion prints its one parameter."""
    return write_notebook(
        path,
        new_markdown_cell(f"# What is N in {path.stem}?"),
        new_code_cell("N = 1", metadata={"tags": ["parameters"]}),
        new_code_cell(
            "from IPython.display import Markdown, display\n"
            "display(Markdown(f'**Conclusion.** N is {N!r}.'))"
        ),
    )


def failing_notebook(path: Path) -> Path:
    return write_notebook(path, new_markdown_cell("# Does it fail?"), new_code_cell("1 / 0"))


def landing_entries(html: str) -> list[str]:
    """The chapters the landing page lists, in order."""
    return re.findall(r'<li><p><a class="reference internal" href="(\w+).html"', html)


def chapter_links(html: str) -> list[str]:
    """The chapters in the contents sidebar, in order."""
    return re.findall(r'<li class="toctree-l1[^"]*"><a class="[^"]*" href="([^"#]*)', html)


def prev_next(html: str) -> tuple[str | None, str | None]:
    """The targets of a page's previous and next links."""
    found = [
        re.search(rf'<a class="{side}"\s+href="([^"]+)"', html)
        for side in ("left-prev", "right-next")
    ]
    return tuple(match and match.group(1) for match in found)


def test_the_book_has_the_chapters_in_the_order_given_with_previous_and_next(tmp_path):
    names = ["b", "a", "c"]
    conclusion = "**Conclusion.** {0} is *{0}*.\n\nMore."
    paths = [
        saved_notebook(tmp_path / f"{n}.ipynb", f"Chapter {n}?", conclusion.format(n))
        for n in names
    ]
    index = build_site(paths, tmp_path / "site", execute=False)
    site = tmp_path / "site"
    assert index == site / "index.html"
    landing = index.read_text()
    for n in names:
        assert f"{n} is <em>{n}</em>." in landing  # the headline: the first sentence only
    assert "More." not in landing and "**Conclusion.**" not in landing
    assert landing_entries(landing) == names
    pages = [site / f"{n}.html" for n in names]
    expected = [("index.html", "a.html"), ("b.html", "c.html"), ("a.html", None)]
    for page, (before, after) in zip(pages, expected, strict=True):
        html = page.read_text()
        assert chapter_links(html) == [p.name if p != page else "" for p in pages], page
        assert prev_next(html) == (before, after), page
        assert re.search(r'<span class="math notranslate nohighlight">\\\(a \\cdot b', html)
        # MathJax from the site itself, never from a CDN: the page works offline
        mathjax = re.findall(r'<script[^>]*src="([^"]*tex-chtml[^"]*)"', html)
        assert mathjax and (site / mathjax[0].split("?")[0]).is_file()
        assert not re.findall(r'(?:src|href)="(?:https?:)?//', html), page
        # the notebook beside its page, as it was given (not executed)
        assert (site / f"{page.stem}.ipynb").read_bytes() == (
            tmp_path / f"{page.stem}.ipynb"
        ).read_bytes()
    assert (site / "search.html").is_file() and "chapter" in (
        site / "searchindex.js"
    ).read_text().lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb", "b.ipynb", "c.ipynb", "site"]


def test_a_new_build_replaces_the_old_site_and_other_folders_are_refused(tmp_path):
    first = saved_notebook(tmp_path / "first.ipynb", "First?", "**Conclusion.** One.")
    second = saved_notebook(tmp_path / "second.ipynb", "Second?", "**Conclusion.** Two.")
    build_site([first], tmp_path / "site", execute=False)
    build_site([second], tmp_path / "site", execute=False)
    assert not (tmp_path / "site" / "first.html").exists()
    assert "Two." in (tmp_path / "site" / "index.html").read_text()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ReportError, match="mine: not empty and not a site built here"):
        build_site([first], tmp_path / "mine", execute=False)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]


def test_missing_notebooks_are_named_before_anything_is_written(tmp_path):
    with pytest.raises(ReportError, match="nope.ipynb: no such notebook"):
        build_site([tmp_path / "nope.ipynb"], tmp_path / "site", execute=False)
    with pytest.raises(ReportError, match="distinct names"):
        build_site([], tmp_path / "site", execute=False)
    assert list(tmp_path.iterdir()) == []


def test_a_parameter_given_on_the_command_line_reaches_the_notebook(tmp_path, capfd):
    notebook = parameterised_notebook(tmp_path / "tiny.ipynb")
    before = notebook.read_bytes()
    main([str(notebook), "-y", "{N: [1]}", "-p", "N", "8", "--output-dir", str(tmp_path / "out")])
    out, err = capfd.readouterr()  # the kernel's own output included
    assert out == f"wrote {tmp_path / 'out' / 'index.html'}\n"
    assert err == f"executing {notebook}\n"  # no kernel warnings (TCP without encryption)
    index = (tmp_path / "out" / "index.html").read_text()
    assert (
        "N is 8." in index
        and '<code class="docutils literal notranslate"><span class="pre">N</span>' in index
    )
    assert "N is 8." in (tmp_path / "out" / "tiny.html").read_text()
    executed = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)
    assert executed.metadata.papermill.parameters == {"N": 8}  # -p over -y
    assert [cell.metadata.get("tags") for cell in executed.cells[1:3]] == [
        ["parameters"],
        ["injected-parameters"],
    ]
    assert notebook.read_bytes() == before  # nothing written beside the source notebook
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.ipynb"]


def test_tables_are_plain_html_tables_without_quotes_or_types(tmp_path):
    frame = pl.DataFrame({"model": ["dot product", "MLP"], "rmse": [0.93, 0.95]})
    shown = new_output("execute_result", data={"text/html": frame._repr_html_(), "text/plain": "t"})
    printed = new_output("stream", name="stdout", text=f"by model:\n{frame}\nshape: (a, b)\n")
    path = write_notebook(
        tmp_path / "tables.ipynb",
        new_markdown_cell("# Tables?"),
        new_code_cell("t", outputs=[shown]),
        new_code_cell("print(t)", outputs=[printed]),
    )
    build_site([path], tmp_path / "out", execute=False)
    page = (tmp_path / "out" / "tables.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page[page.index('class="dataframe"') :])
    cells = [re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in rows]
    assert cells[:3] == [["model", "rmse"], ["dot product", "0.93"], ["MLP", "0.95"]]
    assert "shape: (2, 2)" not in page and "&quot;" not in page
    assert "by model:" in page and "┌" in page  # the printed table, without its shape line
    assert "shape: (a, b)" in page  # a line that merely starts alike, not before a table, stays


def halves_png(width: int, height: int) -> str:
    """A PNG, base64 as notebooks keep it, red on its left half and blue on its right."""
    pixels = np.zeros((height, width, 3))
    pixels[:, : width // 2, 0] = pixels[:, width // 2 :, 2] = 1.0
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, pixels, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_index_shows_a_one_sentence_headline_and_the_main_figure_cut_and_captioned(tmp_path):
    caption = '"Blue" half #1: what the reader should look at.'  # quotes and '#' in the alt text
    figure = new_output("display_data", data={"image/png": halves_png(200, 60), "text/plain": "F"})
    metadata = {
        "tags": ["main-figure"],
        "mystnb": {"figure": {"caption": caption}},
        "dotlab": {"thumbnail": [0.5, 0, 1, 1]},  # the right half
    }
    path = write_notebook(
        tmp_path / "fig.ipynb",
        new_markdown_cell("# A figure?"),
        new_code_cell("plot()", outputs=[figure], metadata=metadata),
        new_markdown_cell("**Conclusion.**\n\nIt is 0.5 wide, e.g. half.\nNot this. Nor this."),
    )
    build_site([path], tmp_path / "out", execute=False)
    landing = (tmp_path / "out" / "index.html").read_text()
    assert ": It is 0.5 wide, e.g. half." in landing and "Not this" not in landing
    [source] = re.findall(r'<img alt="([^"]*)" src="([^"]*)"', landing)
    assert source == (html.escape(caption), "_images/fig.png")
    thumbnail = matplotlib.image.imread(tmp_path / "out" / source[1])
    assert thumbnail.shape[:2] == (60, 100)  # the right half, at its own size
    assert (thumbnail[..., 2] == 1).all() and (thumbnail[..., 0] == 0).all()  # blue, no red
    assert 'href="fig.html"' in landing and "half #1: what the reader" in landing
    chapter = (tmp_path / "out" / "fig.html").read_text()
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].metadata.dotlab.thumbnail = [0.5, 0, 0.2, 1]  # its right edge left of its left one
    nbformat.write(nb, path)
    with pytest.raises(ReportError, match=r"fig: dotlab.thumbnail \[0.5, 0, 0.2, 1\] must be"):
        build_site([path], tmp_path / "out", execute=False)
    assert (tmp_path / "out" / "fig.html").read_text() == chapter  # the site built before kept
    assert re.search(r"<figcaption>\s*<p><span class=\"caption-text\">.Blue. half #1", chapter)


def timed(path: Path, seconds: float) -> Path:
    """`path` with its code cells' saved timing metadata saying the run took `seconds`."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            end = f"2026-01-01T00:{int(seconds) // 60:02d}:{int(seconds) % 60:02d}.000000Z"
            cell.metadata.execution = {
                "iopub.execute_input": "2026-01-01T00:00:00.000000Z",
                "shell.execute_reply": end,
            }
    nbformat.write(nb, path)
    return path


def test_the_longest_notebook_by_its_saved_run_starts_first(tmp_path, capfd):
    short = timed(parameterised_notebook(tmp_path / "short.ipynb"), 5)
    long = timed(parameterised_notebook(tmp_path / "long.ipynb"), 95)
    main([str(short), str(long), "--jobs", "1", "--output-dir", str(tmp_path / "out")])
    _, err = capfd.readouterr()
    assert err == f"executing {long}\nexecuting {short}\n"
    index = (tmp_path / "out" / "index.html").read_text()
    assert landing_entries(index) == ["short", "long"]  # the book keeps the order given


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope.ipynb"], "error: nope.ipynb: no such notebook."),
        (
            ["tiny.ipynb", "-p", "M", "2"],
            "error: tiny.ipynb: unknown parameter M; its parameters are N",
        ),
        (["tiny.ipynb", "-p", "N", "2", "--no-execute"], "error: Parameters take effect only when"),
        (["tiny.ipynb", "-y", "{N: [1, 2], K: 3}"], "error: tiny.ipynb: unknown parameter K;"),
        (["tiny.ipynb", "-y", "[1, 2]"], "utilities.reports: error: -y: expected a YAML mapping"),
        (["tiny.ipynb", "--jobs", "0"], "utilities.reports: error: argument --jobs"),
    ],
)
def test_command_line_errors_end_in_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    parameterised_notebook(tmp_path / "tiny.ipynb")
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[-1], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ipynb"]


def site_files(site: Path) -> dict[str, bytes]:
    """Every file of a built site by its path inside it, but the executed notebooks (their
    papermill metadata holds start times and durations) and Sphinx's `.buildinfo` (a hash of
    the build's configuration)."""
    files = (p for p in site.rglob("*") if p.is_file() and p.suffix != ".ipynb")
    return {str(p.relative_to(site)): p.read_bytes() for p in files if p.name != ".buildinfo"}


def test_notebooks_side_by_side_make_the_same_site_as_one_at_a_time(tmp_path):
    paths = [parameterised_notebook(tmp_path / f"{name}.ipynb") for name in ("b", "a")]
    sites = {}
    for jobs in (1, 2):
        main([*map(str, paths), "--jobs", str(jobs), "--output-dir", str(tmp_path / f"j{jobs}")])
        sites[jobs] = site_files(tmp_path / f"j{jobs}")
    assert {"b.html", "a.html", "index.html"} <= set(sites[1])
    assert sites[1].keys() == sites[2].keys()
    differing = [name for name in sites[1] if sites[1][name] != sites[2][name]]
    assert differing == []
    assert landing_entries((tmp_path / "j2" / "index.html").read_text()) == ["b", "a"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_notebook_shows_its_error_and_the_others_are_built(tmp_path, capsys, jobs):
    paths = [
        parameterised_notebook(tmp_path / "a.ipynb"),
        failing_notebook(tmp_path / "bad.ipynb"),
        parameterised_notebook(tmp_path / "c.ipynb"),
    ]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        main([*map(str, paths), "--jobs", str(jobs), "--output-dir", str(out)])
    assert caught.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {paths[1]}: cell In [1] failed with ZeroDivisionError: division by zero "
        f"(see {out / 'bad.html'})"
    ]
    index = (out / "index.html").read_text()
    assert landing_entries(index) == ["a", "bad", "c"]
    failed = index.split('href="bad.html"')[-1].split("</li>")[0]  # the landing page's entry
    failed = re.sub(r"<[^>]+>", "", failed)
    assert "did not complete" in failed and "ZeroDivisionError: division by zero" in failed
    assert "N is 1." in (out / "a.html").read_text() and "N is 1." in (out / "c.html").read_text()
    page = (out / "bad.html").read_text()  # the page shows where and why it failed
    assert "An Exception was encountered" in page and "ZeroDivisionError" in page
    executed = nbformat.read(out / "bad.ipynb", as_version=4)
    assert executed.metadata.papermill.exception is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb", "bad.ipynb", "c.ipynb", "out"]


def test_a_cell_past_the_timeout_is_one_line_saying_how_to_raise_it(tmp_path, capsys):
    slow = write_notebook(tmp_path / "slow.ipynb", new_code_cell("import time\ntime.sleep(60)"))
    with pytest.raises(SystemExit) as caught:
        main([str(slow), "--timeout", "1", "--output-dir", str(tmp_path / "out")])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"error: {slow}: cell In [1] ran past the 1 s cell timeout (--timeout SECONDS) "
        f"(see {tmp_path / 'out' / 'slow.html'})"
    )
    assert "Traceback" not in err and "ZMQError" not in err


def test_a_kernel_that_dies_is_one_error_and_its_notebook_says_so(tmp_path):
    dying = write_notebook(tmp_path / "dying.ipynb", new_code_cell("import os\nos._exit(1)"))
    with pytest.raises(ReportError, match="dying.ipynb: DeadKernelError"):
        build_site([dying], tmp_path / "site")
    # kept as far as it ran, saying so, though papermill marked every cell completed
    executed = nbformat.read(tmp_path / "site" / "dying.ipynb", as_version=4)
    assert executed.metadata.papermill.exception is True
    assert executed.cells[0].source.startswith("**Not complete.** ")
    assert "Not complete." in (tmp_path / "site" / "dying.html").read_text()


@pytest.mark.parametrize("text", ["8", "-3", "1_000", "2.5", "1e-3", "nan", "True", "None", "x8"])
def test_values_are_read_as_papermills_command_line_reads_them(text):
    from papermill.cli import _resolve_type

    assert repr(parse_value(text)) == repr(_resolve_type(text))


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_keeps_the_notebooks_executed_and_says_so_in_one_line(tmp_path, jobs):
    good = parameterised_notebook(tmp_path / "good.ipynb")
    pid_file = tmp_path / "kernel.pid"
    slow = write_notebook(
        tmp_path / "slow.ipynb",
        new_markdown_cell("# Does it ever end?"),
        new_code_cell(
            "import os, pathlib, time\n"
            f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
            "time.sleep(60)"
        ),
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "utilities.reports", str(good), str(slow)]
    build = subprocess.Popen(
        [*command, "--jobs", str(jobs), "--output-dir", str(out)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # slow is in its sleeping cell, and good ran to its end (and its kernel shut down)
        copies = lambda: [p.read_text() for p in tmp_path.glob(".out-*/src/good.ipynb")]  # noqa: E731
        wait_for(lambda: pid_file.exists() and "N is 1." in "".join(copies()), seconds=120)
        time.sleep(3)
        build.send_signal(signal.SIGINT)
        stdout, stderr = build.communicate(timeout=120)
    finally:
        build.kill()
    assert build.returncode == 130, stderr
    assert stderr.splitlines()[-1] == f"interrupted slow.ipynb; kept the 1 others in {out}"
    assert "Traceback" not in stderr, stderr
    index = (out / "index.html").read_text()
    assert 'href="good.html"' in index and "slow" not in index
    # nothing under the interrupted notebook's names, not even a half-executed copy
    assert {p.name for p in out.iterdir()} >= {"good.html", "good.ipynb", "index.html"}
    assert not list(out.glob("slow*")) and not list(out.rglob("*slow*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "good.ipynb",
        "kernel.pid",
        "out",
        "slow.ipynb",
    ]
    kernel = int(pid_file.read_text())
    wait_for(lambda: not is_running(kernel), seconds=10)  # no orphan kernel
