"""The report site in a real browser, offline: headless Chromium opens `index.html` from disk,
walks the book by its "next" links, and checks every page's figures, the contents sidebar, the
maths MathJax typeset from the site's own copy, and the search. The site is built here from the
saved notebooks plus a tiny one with equations (`--no-execute`), so the test does not depend on
`reports/` having been built."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_notebook

from utilities.reports import build_site

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_MS = 30_000
MATHS = r"Inline $a \cdot b = \sum_i a_i b_i$, and displayed:" + "\n\n$$\\|a\\|^2 = a \\cdot a$$"


def find_chromium() -> str | None:
    """`DOTLAB_CHROMIUM`, else the first Chromium on PATH."""
    found = (shutil.which(name) for name in BROWSERS)
    return os.environ.get("DOTLAB_CHROMIUM") or next(filter(None, found), None)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found: install Debian's chromium or set DOTLAB_CHROMIUM")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            timeout=TIMEOUT_MS,
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def chapters(tmp_path_factory) -> list[Path]:
    """The saved notebooks, then a tiny one with equations in Markdown."""
    maths = tmp_path_factory.mktemp("notebooks") / "zz_maths.ipynb"
    cells = [new_markdown_cell(f"# Some maths\n\n{MATHS}")]
    nbformat.write(new_notebook(cells=cells), maths)
    return [*NOTEBOOKS, maths]


@pytest.fixture(scope="module")
def site(tmp_path_factory, chapters) -> Path:
    return build_site(chapters, tmp_path_factory.mktemp("site") / "reports", execute=False)


def count_figures(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    return sum("image/png" in out.get("data", {}) for out in outputs)


def captions(path: Path) -> list[str]:
    """The captions a notebook gives its figures (MyST-NB's `mystnb.figure.caption`)."""
    cells = nbformat.read(path, as_version=4).cells
    given = [c.metadata.get("mystnb", {}).get("figure", {}).get("caption") for c in cells]
    return [" ".join(caption.split()) for caption in given if caption]


def has_main_figure(path: Path) -> bool:
    """Whether a notebook tags a cell with its main figure (the index's thumbnail)."""
    cells = nbformat.read(path, as_version=4).cells
    return any("main-figure" in c.metadata.get("tags", []) for c in cells)


def open_page(browser, url: str):
    """A new offline tab at `url` (any request off the disk fails), and the list that collects
    its failed requests and script errors."""
    page = browser.new_page()
    problems: list[str] = []
    page.route("http*://**", lambda route: route.abort())
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
    return page, problems


def sidebar(page) -> list[str]:
    """The chapters in the contents sidebar, as absolute URLs."""
    return page.eval_on_selector_all(
        ".bd-sidebar-primary li.toctree-l1 > a", "els => els.map(e => e.href.split('#')[0])"
    )


def figures(page) -> list[dict]:
    """Each output figure: loaded (its natural width) and its width beside the article's."""
    return page.eval_on_selector_all(
        ".cell_output img",
        """els => els.map(e => ({src: e.src.slice(-40), loaded: e.complete ? e.naturalWidth : 0,
            right: e.getBoundingClientRect().right,
            column: e.closest('article').getBoundingClientRect().right}))""",
    )


def has_maths(path: Path) -> bool:
    """Whether a notebook's Markdown holds `$` maths."""
    cells = nbformat.read(path, as_version=4).cells
    return any(c.cell_type == "markdown" and "$" in c.source for c in cells)


def prose(page) -> str:
    """The page's text outside code, outputs and typeset maths: where raw LaTeX would show."""
    return page.evaluate(
        """() => { const copy = document.querySelector('article').cloneNode(true);
        copy.querySelectorAll('pre, code, .cell_output, mjx-container').forEach(e => e.remove());
        return copy.innerText; }"""
    )


def check_maths_and_tables(page, notebook: Path, url: str) -> None:
    """Maths typeset (no raw `$…$` or LaTeX commands left), tables plain (no quotes, no types)."""
    if has_maths(notebook):
        page.wait_for_selector("mjx-container", timeout=TIMEOUT_MS)
    raw = re.findall(r"\$[^$\n]+\$|\\(?:frac|sum|hat|lVert|mathrm|operatorname)\b", prose(page))
    assert raw == [], f"{url}: raw LaTeX {raw[:3]}"
    cells = page.eval_on_selector_all(".cell_output table td", "els => els.map(e => e.innerText)")
    assert not [c for c in cells if c.startswith('"') and c.endswith('"')], f"{url}: quoted cells"
    assert "shape: (" not in page.inner_text("article"), f"{url}: a frame's shape line"


def test_the_book_reads_in_order_offline_with_figures_maths_and_search(
    browser, site, chapters, tmp_path_factory
):
    shots = Path(os.environ.get("DOTLAB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    urls = [(site.parent / f"{path.stem}.html").as_uri() for path in chapters]
    index, problems = open_page(browser, site.as_uri())
    assert sidebar(index) == urls
    landing = index.eval_on_selector_all(
        "article li > p > a.internal", "els => els.map(e => e.href)"
    )
    assert landing == urls
    thumbnails = index.eval_on_selector_all(
        "article figure img",
        """els => els.map(e => ({loaded: e.complete ? e.naturalWidth : 0, alt: e.alt,
            shown: e.getBoundingClientRect().width, right: e.getBoundingClientRect().right,
            column: e.closest('article').getBoundingClientRect().right}))""",
    )
    assert len(thumbnails) == sum(map(has_main_figure, chapters))
    for thumbnail in thumbnails:  # loaded, described, inside the column, not shrunk to a stamp
        assert thumbnail["loaded"] > 0 and thumbnail["alt"], thumbnail
        assert thumbnail["right"] <= thumbnail["column"] + 0.5, thumbnail
        assert thumbnail["shown"] >= min(thumbnail["loaded"], 400), thumbnail
    index.screenshot(path=shots / "index.png", full_page=True)
    page, url = index, site.as_uri()
    for notebook, expected in zip(chapters, urls, strict=True):
        page.locator("a.right-next").click()  # the book read as a reader would: "next"
        page.wait_for_load_state("load")
        assert page.url == expected, f"{url}: next leads to {page.url}"
        url = page.url
        shown = figures(page)
        assert len(shown) == count_figures(notebook), url
        assert all(figure["loaded"] > 0 for figure in shown), f"{url}: a figure did not load"
        assert all(f["right"] <= f["column"] + 0.5 for f in shown), f"{url}: a figure sticks out"
        shown_captions = page.eval_on_selector_all(
            ".cell_output figure figcaption", "els => els.map(e => e.innerText.trim())"
        )
        assert len(shown_captions) == len(captions(notebook)), f"{url}: captions"
        current = page.locator(".bd-sidebar-primary li.toctree-l1.current > a")
        assert current.get_attribute("href") == "#", f"{url}: not marked in the sidebar"
        assert page.title().endswith("dotlab reports")
        check_maths_and_tables(page, notebook, url)
        if notebook.stem.startswith(("01_", "06_", "zz_")):  # chapters as a reader sees them
            page.screenshot(path=shots / f"{notebook.stem}.png")
    assert page.locator("a.right-next").count() == 0  # the last chapter
    # MathJax, from the site's own _static, typeset both equations
    page.wait_for_selector("mjx-container[display='true']", timeout=TIMEOUT_MS)
    assert page.locator("mjx-container").count() == 2
    assert page.locator("mjx-container[display='true'] mjx-mi").count() >= 3  # a, a, a
    page.close()
    search, search_problems = open_page(browser, site.parent.joinpath("search.html").as_uri())
    search.goto(search.url + "?q=sigmoid", wait_until="load")
    results = search.locator("ul.search li a").first
    results.wait_for(timeout=TIMEOUT_MS)
    assert "04_sigmoid_embedding_dot.html" in results.get_attribute("href")
    search.close()
    assert problems + search_problems == []
