"""The report site, built from tiny hand-made notebooks: the index reads each notebook's
question, conclusion and main figure from its outputs."""

from __future__ import annotations

import base64
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image
from processes import is_running, wait_for

from utilities.reports import (
    ReportError,
    build_site,
    main,
    make_thumbnail,
    parse_parameters,
    parse_value,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def png(colour: str, size: tuple[int, int] = (800, 400)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def figure_cell(colour: str, tags: list[str] | None = None):
    output = new_output("display_data", data={"image/png": png(colour), "text/plain": "<Figure>"})
    return new_code_cell("plt.show()", outputs=[output], metadata={"tags": tags or []})


def conclusion_cell(text: str):
    output = new_output("display_data", data={"text/markdown": text, "text/plain": "<Markdown>"})
    return new_code_cell("display(Markdown(...))", outputs=[output])


def write_notebook(path, *cells):
    nbformat.write(new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC}), path)
    return path


def tiny_notebook(path, *, figure_tags=None):
    return write_notebook(
        path,
        new_markdown_cell("Some words first.\n\n# Is `x` larger than 1?\n\nThe claim."),
        figure_cell("red", tags=figure_tags),
        figure_cell("blue"),
        conclusion_cell("\n**Conclusion.** Yes: *x* = 42.\n\nA second paragraph of caveats."),
    )


def pixel(path) -> tuple[int, int, int]:
    return Image.open(path).convert("RGB").getpixel((10, 10))


def test_the_index_lists_question_headline_thumbnail_and_link(tmp_path):
    notebook = tiny_notebook(tmp_path / "01_tiny.ipynb")
    index = build_site([notebook], tmp_path / "site", execute=False)
    assert index == tmp_path / "site" / "index.html"
    text = index.read_text()
    assert "Is <code>x</code> larger than 1?" in text
    assert "Yes: <em>x</em> = 42." in text
    assert "second paragraph" not in text  # the headline is the first paragraph only
    assert "**Conclusion.**" not in text
    assert 'href="01_tiny.html"' in text and 'src="thumbnails/01_tiny.png"' in text
    assert "saved in the notebook" in text
    thumbnail = tmp_path / "site" / "thumbnails" / "01_tiny.png"
    assert Image.open(thumbnail).size == (360, 180)  # scaled down, aspect kept
    assert pixel(thumbnail) == (0, 0, 255)  # untagged: the last figure, the one before the results
    page = (tmp_path / "site" / "01_tiny.html").read_text()
    inline = re.findall(r'<img[^>]*src="data:image/png;base64', page)
    assert len(inline) == 2  # figures inline: the page stands alone
    # saved outputs record no titles: each figure is described by its place in the notebook
    alts = re.findall(r'<img alt="([^"]*)"', page)
    assert alts == [f"Figure {n} of 2: Is x larger than 1?" for n in (1, 2)]
    assert 'alt="Figure 2 of 2: Is x larger than 1?"' in text  # the thumbnail's
    assert 'href="index.html"' in page
    assert "cdnjs" not in page and "<script src=" not in page  # loads complete offline


def test_a_tagged_cell_is_the_main_figure(tmp_path):
    notebook = tiny_notebook(tmp_path / "a.ipynb", figure_tags=["main-figure"])
    build_site([notebook], tmp_path / "site", execute=False)
    assert pixel(tmp_path / "site" / "thumbnails" / "a.png") == (255, 0, 0)


def test_notebooks_are_listed_in_the_order_given(tmp_path):
    paths = [tiny_notebook(tmp_path / f"{name}.ipynb") for name in ("b", "a", "c")]
    text = build_site(paths, tmp_path / "site", execute=False).read_text()
    assert text.index('id="b"') < text.index('id="a"') < text.index('id="c"')
    assert sorted(p.name for p in (tmp_path / "site").glob("*.html")) == [
        "a.html",
        "b.html",
        "c.html",
        "index.html",
    ]


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (1, "no title heading"),
        (4, "no Markdown starting with '\\*\\*Conclusion.\\*\\*'; was the notebook executed"),
        (2, "no figure"),
    ],
)
def test_a_notebook_without_what_the_index_needs_is_named(tmp_path, drop, message):
    good = tiny_notebook(tmp_path / "good.ipynb")
    cells = nbformat.read(good, as_version=4).cells
    kept = {1: [cells[1], cells[2], cells[3]], 4: cells[:3], 2: [cells[0], cells[3]]}[drop]
    bad = write_notebook(tmp_path / "bad.ipynb", *kept)
    with pytest.raises(ReportError, match=f"bad.ipynb: {message}"):
        build_site([good, bad], tmp_path / "site", execute=False)
    index = (tmp_path / "site" / "index.html").read_text()  # the good page, the bad one marked
    assert 'href="good.html"' in index and 'href="bad.html"' not in index
    assert '<article id="bad" class="failed">' in index and "bad.ipynb did not build" in index
    assert not (tmp_path / "site" / "bad.html").exists()
    assert not list((tmp_path / "site").rglob(".*.partial.*"))


def test_missing_notebooks_are_named_before_anything_is_written(tmp_path):
    with pytest.raises(ReportError, match="nope.ipynb: no such notebook"):
        build_site([tmp_path / "nope.ipynb"], tmp_path / "site", execute=False)
    with pytest.raises(ReportError, match="No notebooks"):
        build_site([], tmp_path / "site", execute=False)
    assert not (tmp_path / "site").exists()


def test_small_figures_are_not_enlarged():
    small = base64.b64decode(png("green", (100, 50)))
    assert Image.open(io.BytesIO(make_thumbnail(small))).size == (100, 50)


def test_the_command_line_renders_saved_outputs(tmp_path, capsys):
    notebook = tiny_notebook(tmp_path / "n.ipynb")
    main(["--no-execute", str(notebook), "--output-dir", str(tmp_path / "out")])
    assert (tmp_path / "out" / "index.html").is_file()
    assert "1 notebook pages" in capsys.readouterr().out


def test_executing_computes_the_outputs_the_index_reads(tmp_path):
    """The default path: the saved notebook has no outputs at all; executing makes them."""
    notebook = write_notebook(
        tmp_path / "fresh.ipynb",
        new_markdown_cell("# What is 6 times 7?"),
        new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "from IPython.display import Markdown, display\n"
            "fig, axes = plt.subplots(1, 2)\nfig.suptitle('Six times seven')\n"
            "axes[0].plot([0, 1], [0, 6 * 7])\naxes[0].set_title('a line')\nplt.show()\n"
            "display(Markdown(f'**Conclusion.** It is {6 * 7}.'))"
        ),
    )
    text = build_site([notebook], tmp_path / "site").read_text()
    assert "It is 42." in text and "computed by executing the notebook" in text
    # the kernel recorded the figure's titles; they are its alt text, on the page and the index
    assert 'alt="Six times seven; a line"' in text
    page = (tmp_path / "site" / "fresh.html").read_text()
    assert re.findall(r'<img alt="([^"]*)"', page) == ["Six times seven; a line"]
    assert Image.open(tmp_path / "site" / "thumbnails" / "fresh.png").width == 360
    saved = nbformat.read(notebook, as_version=4)
    assert saved.cells[1].outputs == []  # the source notebook is left as it was


def test_a_failing_cell_names_the_notebook_the_cell_and_the_saved_traceback(tmp_path):
    bad = write_notebook(
        tmp_path / "bad.ipynb", new_code_cell("# NBVAL_IGNORE_OUTPUT\nx = 1\n1 / 0")
    )
    with pytest.raises(ReportError) as caught:
        build_site([bad], tmp_path / "site", execute=True)
    assert str(caught.value) == (
        f"{bad}: cell In [1] ('x = 1') failed with ZeroDivisionError: division by zero "
        f"(the executed notebook, traceback included, is {tmp_path / 'site' / 'bad.ipynb'})"
    )
    assert not (tmp_path / "site" / "index.html").exists()


def parameterised_notebook(path):
    """A tiny notebook whose conclusion prints its one parameter."""
    return write_notebook(
        path,
        new_markdown_cell("# What is N?"),
        new_code_cell("N = 1", metadata={"tags": ["parameters"]}),
        new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "from IPython.display import Markdown, display\n"
            "plt.plot([0, 1], [0, N])\nplt.show()\n"
            "display(Markdown(f'**Conclusion.** N is {N!r}.'))"
        ),
    )


def git_status(path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--", path], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout


def test_a_parameter_given_on_the_command_line_is_injected(tmp_path, capfd):
    notebook = parameterised_notebook(tmp_path / "tiny.ipynb")
    before, notebooks_clean = notebook.read_bytes(), git_status("notebooks") == ""
    main([str(notebook), "-p", "N", "8", "--output-dir", str(tmp_path / "out")])
    out, err = capfd.readouterr()  # the kernel's own output included
    assert "1 notebook pages" in out
    assert err == f"executing {notebook}\n"  # no kernel warnings (TCP without encryption)
    index = (tmp_path / "out" / "index.html").read_text()
    assert "N is 8." in index and "Run with <code>N = 8</code>" in index
    page = (tmp_path / "out" / "tiny.html").read_text()
    assert "N is 8." in page and "Run with <code>N = 8</code>" in page
    executed = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)
    assert [cell.metadata.get("tags") for cell in executed.cells[1:3]] == [
        ["parameters"],
        ["injected-parameters"],
    ]
    assert executed.metadata.papermill.parameters == {"N": 8}
    assert notebook.read_bytes() == before  # nothing written beside the source notebook
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.ipynb"]
    if notebooks_clean:  # as in CI; a working tree others are editing may change meanwhile
        assert git_status("notebooks") == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope.ipynb"], "nope.ipynb: no such notebook."),
        (
            ["tiny.ipynb", "-p", "M", "2"],
            "tiny.ipynb: unknown parameter M; its parameters are N (the cell tagged 'parameters').",
        ),
        (["tiny.ipynb", "-p", "N", "2", "--no-execute"], "Parameters take effect only when"),
        (["tiny.ipynb", "-y", "[1, 2]"], "-y: expected a YAML mapping"),
        (["tiny.ipynb", "-y", "{N: [1, 2], K: 3}"], "tiny.ipynb: unknown parameter K;"),
        (["tiny.ipynb", "--jobs", "0"], "--jobs: expected a positive whole number"),
        (["tiny.ipynb", "--jobs", "two"], "--jobs: expected a positive whole number"),
    ],
)
def test_command_line_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    parameterised_notebook(tmp_path / "tiny.ipynb")
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "reports").exists()
    with pytest.raises(ReportError, match=re.escape(message)):  # --verbose: the traceback
        main([*argv, "--verbose"])


def test_a_cell_past_the_timeout_is_one_line_saying_how_to_raise_it(tmp_path, capsys):
    slow = write_notebook(tmp_path / "slow.ipynb", new_code_cell("import time\ntime.sleep(60)"))
    with pytest.raises(SystemExit) as caught:
        main([str(slow), "--timeout", "1", "--output-dir", str(tmp_path / "out")])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"error: {slow}: cell In [1] ('import time') ran past the 1 s cell timeout; "
        "raise it with --timeout SECONDS"
    )
    assert "Traceback" not in err and "ZMQError" not in err


def test_p_values_update_the_yaml_mapping_as_in_papermill():
    pairs = [("N", "8"), ("LR", "1e-3"), ("NAME", "ml-100k")]
    assert parse_parameters(pairs, "{SEEDS: [0, 1], N: 1}") == {
        "SEEDS": [0, 1],
        "N": 8,
        "LR": 0.001,
        "NAME": "ml-100k",
    }
    assert parse_parameters([], None) == {}


def test_a_kernel_that_dies_is_one_error(tmp_path):
    dying = write_notebook(tmp_path / "dying.ipynb", new_code_cell("import os\nos._exit(1)"))
    with pytest.raises(ReportError, match="dying.ipynb: the kernel died while running a cell"):
        build_site([dying], tmp_path / "site")
    # kept as far as it ran, saying so, though papermill marked every cell completed
    executed = nbformat.read(tmp_path / "site" / "dying.ipynb", as_version=4)
    assert executed.metadata.papermill.exception is True
    assert executed.cells[0].source.startswith("**Not complete.** ")
    assert not list((tmp_path / "site").rglob(".*.partial.*"))


@pytest.mark.parametrize("text", ["8", "-3", "1_000", "2.5", "1e-3", "nan", "True", "None", "x8"])
def test_values_are_read_as_papermills_command_line_reads_them(text):
    from papermill.cli import _resolve_type

    assert repr(parse_value(text)) == repr(_resolve_type(text))


def failing_notebook(path):
    return write_notebook(path, new_markdown_cell("# Does it fail?"), new_code_cell("1 / 0"))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_notebook_is_marked_on_the_index_and_the_others_are_built(tmp_path, capsys, jobs):
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
        f"error: {paths[1]}: cell In [1] ('1 / 0') failed with ZeroDivisionError: division by "
        f"zero (the executed notebook, traceback included, is {out / 'bad.ipynb'})"
    ]
    index = (out / "index.html").read_text()
    assert re.findall(r'<article id="(\w+)"', index) == ["a", "bad", "c"]  # the order given
    assert re.findall(r'href="(\w+).html"', index) == ["a", "a", "c", "c"]  # image and title
    failed = index[index.index('<article id="bad"') :].split("</article>")[0]
    assert 'class="failed"' in failed and "bad.ipynb did not build" in failed
    assert "ZeroDivisionError: division by zero" in failed and "<img" not in failed
    assert sorted(p.name for p in (out / "thumbnails").iterdir()) == ["a.png", "c.png"]
    assert not (out / "bad.html").exists()
    # the failed notebook is kept, traceback included, and says it did not complete
    executed = nbformat.read(out / "bad.ipynb", as_version=4)
    assert executed.metadata.papermill.exception is True
    assert "An Exception was encountered" in executed.cells[0].source
    assert not list(out.rglob(".*.partial.*"))


def test_jobs_build_the_same_pages_as_one_at_a_time(tmp_path):
    paths = [parameterised_notebook(tmp_path / f"{name}.ipynb") for name in ("b", "a")]
    for jobs in (1, 2):
        build_site(paths, tmp_path / f"jobs-{jobs}", jobs=jobs)
    one, two = tmp_path / "jobs-1", tmp_path / "jobs-2"
    names = sorted(str(p.relative_to(one)) for p in one.rglob("*.*"))
    assert names == sorted(str(p.relative_to(two)) for p in two.rglob("*.*"))
    assert names == ["a.html", "a.ipynb", "b.html", "b.ipynb", "index.html"] + [
        "thumbnails/a.png",
        "thumbnails/b.png",
    ]
    for name in names:
        if not name.endswith(".ipynb"):  # an executed notebook records its run's times
            assert (one / name).read_bytes() == (two / name).read_bytes(), name
    index = (two / "index.html").read_text()
    assert index.index('id="b"') < index.index('id="a"')


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT, as Ctrl-C does in a terminal")
@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_keeps_the_pages_built_and_says_so_in_one_line(tmp_path, jobs):
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
        wait_for(lambda: (out / "good.html").exists() and pid_file.exists(), seconds=120)
        time.sleep(0.5)  # the kernel is in time.sleep
        build.send_signal(signal.SIGINT)
        stdout, stderr = build.communicate(timeout=60)
    finally:
        build.kill()
    assert build.returncode == 130, stderr
    assert stderr.splitlines()[-1] == (  # after the "executing" lines
        f"interrupted while building slow.ipynb; kept 1 built page and {out / 'index.html'}"
    )
    assert "Traceback" not in stderr, stderr
    index = (out / "index.html").read_text()
    assert re.findall(r'<article id="(\w+)"', index) == ["good"]
    # nothing under the interrupted notebook's names, not even a half-executed copy
    assert sorted(p.name for p in out.iterdir()) == [
        "good.html",
        "good.ipynb",
        "index.html",
        "thumbnails",
    ]
    kernel = int(pid_file.read_text())
    wait_for(lambda: not is_running(kernel), seconds=10)  # no orphan kernel


def test_the_headline_may_come_from_a_markdown_conclusion_cell(tmp_path):
    notebook = write_notebook(
        tmp_path / "md.ipynb",
        new_markdown_cell("# A question?"),
        new_markdown_cell("**Conclusion.** Written in the notebook.\n\nDetails after."),
        figure_cell("red"),
    )
    build_site([notebook], tmp_path / "site", execute=False)
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Written in the notebook." in index and "Details after." not in index
