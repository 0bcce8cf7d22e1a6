"""The HTML report read as a person reads it: in a real headless Chromium (Debian's, driven by
Playwright), at a phone's width and a laptop's. Every figure loads, nothing is fetched, no
console error, no sideways scrolling, and every contents link lands on its section; the
screenshots stay in test-artifacts/browser/ to look at."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, program

pytestmark = pytest.mark.slow  # real processes: seconds each

ARTIFACTS = ROOT / "test-artifacts" / "browser"
WIDTHS = (400, 1366)
# what Chromium needs on a closed network as root: no sandbox (root), no GPU, and none of the
# background connections it would otherwise try at every start
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

BROKEN_IMAGES = "[...document.images].filter(i => !i.complete || !i.naturalWidth).length"
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
CONTENTS = "[...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href'))"


@pytest.fixture(scope="module")
def browser():
    chromium = program("chromium", "the HTML report's browser test; Debian package chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
        yield launched
        launched.close()


def read(browser, html: Path, width: int, shot: Path) -> dict:
    """Open the report at `width` px; what a reader would notice, and a full-page shot."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    fetched: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(("data:", "file:"))
            else fetched.append(r.url))
    page.goto(html.as_uri(), wait_until="load")
    seen = {"errors": errors, "fetched": fetched,
            "broken_images": page.evaluate(BROKEN_IMAGES),
            "images": page.evaluate("document.images.length"),
            "overflow": page.evaluate(OVERFLOW), "landed": []}
    for href in page.evaluate(CONTENTS):
        page.click(f"nav.toc a[href='{href}']")
        target = page.locator(href)
        # the section is in the window after the jump (at its top, unless the page ends first)
        box = target.bounding_box()
        seen["landed"].append(box is not None and -1 <= box["y"] < 900
                              and page.url.endswith(href))
    page.evaluate("window.scrollTo(0, 0)")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=shot, full_page=True)
    page.close()
    return seen


def check(browser, html: Path, name: str) -> None:
    for width in WIDTHS:
        seen = read(browser, html, width, ARTIFACTS / f"{name}-{width}px.png")
        assert seen["errors"] == [] and seen["fetched"] == [], seen
        assert seen["images"] >= 5 and seen["broken_images"] == 0, seen
        assert seen["overflow"] <= 0, f"{name} scrolls sideways at {width} px: {seen}"
        assert len(seen["landed"]) >= 2 and all(seen["landed"]), seen


def test_fresh_report_reads_in_chromium(browser, trained):
    """The report written by this run's real fits (one task, the synthetic sweep)."""
    _params, layout, _, _ = trained
    check(browser, layout.reports / "comparison.html", "fresh-report")


def test_committed_report_reads_in_chromium(browser):
    """The default run's report as committed: three tasks, 19 figures."""
    check(browser, ROOT / "reports" / "comparison.html", "default-report")
