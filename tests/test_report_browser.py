"""The report site in a real browser: headless Chromium opens `index.html` from disk, follows
every link, and every page loads with all its figures. The site is built here from the saved
notebooks (`--no-execute`), so the test does not depend on `reports/` having been built."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from utilities.reports import build_site

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_MS = 30_000


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
def site(tmp_path_factory) -> Path:
    return build_site(NOTEBOOKS, tmp_path_factory.mktemp("reports"), execute=False)


def count_figures(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    return sum("image/png" in out.get("data", {}) for out in outputs)


def open_page(browser, url: str):
    """A new tab at `url`, and the list that collects its failed requests and script errors."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
    return page, problems


def loaded_images(page, selector: str = "img") -> list[tuple[str, int]]:
    """`(src prefix, natural width)` of the images; a width of 0 is an image that failed."""
    return page.eval_on_selector_all(
        selector, "els => els.map(e => [e.src.slice(0, 80), e.complete ? e.naturalWidth : 0])"
    )


def local_links(page) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    return sorted({href.split("#")[0] for href in hrefs if href.startswith("file:")})


def test_index_and_every_linked_page_load_with_their_figures(browser, site):
    index, problems = open_page(browser, site.as_uri())
    thumbnails = loaded_images(index)
    assert len(thumbnails) == len(NOTEBOOKS)
    assert all(width == 360 for _, width in thumbnails), thumbnails
    pages = [link for link in local_links(index) if link != site.as_uri()]
    assert pages == [(site.parent / f"{path.stem}.html").as_uri() for path in NOTEBOOKS]
    for notebook, url in zip(NOTEBOOKS, pages, strict=True):
        page, page_problems = open_page(browser, url)
        figures = loaded_images(page, 'img[src^="data:image/png"]')
        assert len(figures) == count_figures(notebook) > 0, url
        assert all(width > 0 for _, width in figures), f"{url}: a figure did not load"
        assert site.as_uri() in local_links(page), f"{url}: no link back to the index"
        assert page.title() == notebook.stem
        problems += page_problems
        page.close()
    assert problems == []
