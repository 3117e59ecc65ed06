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
NBCONVERT_PLACEHOLDER = "No description has been provided for this image"


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


def image_boxes(page) -> list[dict]:
    """Each image's alt text, and its width beside that of its column: the notebook cell it is
    in, or on the index its entry."""
    return page.eval_on_selector_all(
        "img",
        """els => els.map(e => {
            const column = e.closest('.jp-Cell, article').getBoundingClientRect();
            const box = e.getBoundingClientRect();
            return {alt: e.getAttribute('alt'), src: e.src.slice(0, 40), width: box.width,
                    right: box.right, column: column.width, column_right: column.right};
        })""",
    )


def check_images(boxes: list[dict], url: str) -> None:
    """Every image has a real alt text and fits inside its column."""
    for box in boxes:
        assert box["alt"] and box["alt"] != NBCONVERT_PLACEHOLDER, f"{url}: {box}"
        assert box["width"] <= box["column"] + 0.5, f"{url}: image wider than its column: {box}"
        assert box["right"] <= box["column_right"] + 0.5, f"{url}: image sticks out: {box}"


def local_links(page) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    return sorted({href.split("#")[0] for href in hrefs if href.startswith("file:")})


def test_index_and_every_linked_page_load_with_their_figures(browser, site):
    index, problems = open_page(browser, site.as_uri())
    thumbnails = loaded_images(index)
    assert len(thumbnails) == len(NOTEBOOKS)
    assert all(width == 360 for _, width in thumbnails), thumbnails
    check_images(image_boxes(index), site.as_uri())
    pages = [link for link in local_links(index) if link != site.as_uri()]
    assert pages == [(site.parent / f"{path.stem}.html").as_uri() for path in NOTEBOOKS]
    for notebook, url in zip(NOTEBOOKS, pages, strict=True):
        page, page_problems = open_page(browser, url)
        figures = loaded_images(page, 'img[src^="data:image/png"]')
        assert len(figures) == count_figures(notebook) > 0, url
        assert all(width > 0 for _, width in figures), f"{url}: a figure did not load"
        check_images(image_boxes(page), url)
        assert site.as_uri() in local_links(page), f"{url}: no link back to the index"
        back = page.locator("header.dotlab-header a[href='index.html']")
        assert back.is_visible() and back.bounding_box()["height"] >= 18, f"{url}: header link"
        assert page.title() == notebook.stem
        problems += page_problems
        page.close()
    assert problems == []
