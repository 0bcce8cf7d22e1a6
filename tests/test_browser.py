"""The HTML report read as a person reads it: in a real headless Chromium (Debian's, driven by
Playwright), at a phone's width and a laptop's. Every figure loads, nothing is fetched, no
console error, no sideways scrolling (folded sections and figures opened too: only a scroll
box may be wider than the window), every figure opens at its natural size, every contents
link lands on its section, and the decision card's numbers are summary.json's; the
screenshots stay in test-artifacts/browser/ to look at."""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # real processes: seconds each

ARTIFACTS = ROOT / "test-artifacts" / "browser"
WIDTHS = (400, 1366)
BROKEN_IMAGES = "[...document.images].filter(i => !i.complete || !i.naturalWidth).length"
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
CONTENTS = "[...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href'))"
# elements that reach past the window's edges without a scroll box around them to hold them
TOO_WIDE = """() => {
  const width = document.documentElement.clientWidth;
  const held = e => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  return [...document.body.querySelectorAll('*')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.right > width + 1 || r.left < -1) && !held(e);
  }).slice(0, 8).map(e => e.tagName.toLowerCase() + " "
                         + Math.round(e.getBoundingClientRect().width) + " px: "
                         + e.textContent.slice(0, 40));
}"""
OPEN_FOLDED = "document.querySelectorAll('details:not(.figure)').forEach(d => d.open = true)"
# each figure, clicked open: the width it is drawn at against its natural width
FIGURE_SIZES = """async () => {
  const out = [];
  for (const d of document.querySelectorAll('details.figure')) {
    d.querySelector('summary').click();
    await new Promise(r => requestAnimationFrame(r));
    const img = d.querySelector('img');
    out.push([Math.round(img.getBoundingClientRect().width), img.naturalWidth]);
  }
  return out;
}"""
# images no wider than the column yet drawn narrower than their natural size, and the column
SHRUNK = """() => {
  const style = getComputedStyle(document.body);
  const column = document.body.clientWidth - parseFloat(style.paddingLeft)
                 - parseFloat(style.paddingRight);
  return [column, [...document.images].filter(i => i.naturalWidth <= column
      && i.getBoundingClientRect().width < i.naturalWidth - 1)
    .map(i => i.alt + ": " + Math.round(i.getBoundingClientRect().width) + " of "
         + i.naturalWidth + " px")];
}"""
# every image is legible on a phone as it stands, a matrix of many labels aside (it opens at
# its natural size); these must be there, drawn one image per cell or task
PHONE_PANELS = ("decision card", "learning curves", "gates", "confusion matrices")
WIDE_ENOUGH_TO_OPEN = "confusion matrices"
PANEL_ALTS = "[...document.images].map(i => [i.alt, i.naturalWidth])"
# tables that scroll sideways in their box: at a laptop's width none should
SCROLLING_TABLES = """[...document.querySelectorAll('table')]
  .filter(t => t.scrollWidth > t.clientWidth + 1)
  .map(t => t.rows[0].textContent.trim().slice(0, 40) + ": " + t.scrollWidth + " px")"""
CARD_ROWS = """[...document.querySelectorAll('table')].find(t => t.rows[0].cells[1]
  && t.rows[0].cells[1].textContent === 'tier') ? [...[...document.querySelectorAll('table')]
  .find(t => t.rows[0].cells[1] && t.rows[0].cells[1].textContent === 'tier').rows].slice(1)
  .map(r => [...r.cells].map(c => c.textContent)) : []"""


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
    seen["card"] = page.evaluate(CARD_ROWS)
    seen["column"], seen["shrunk"] = page.evaluate(SHRUNK)
    seen["alts"] = page.evaluate(PANEL_ALTS)
    seen["scrolling_tables"] = page.evaluate(SCROLLING_TABLES)
    page.evaluate(OPEN_FOLDED)
    seen["wide_folded_open"] = page.evaluate(TOO_WIDE)
    seen["figures"] = page.evaluate(FIGURE_SIZES)
    seen["wide_figures_open"] = page.evaluate(TOO_WIDE)
    seen["overflow_open"] = page.evaluate(OVERFLOW)
    page.screenshot(path=shot.with_name(shot.stem + "-open.png"), full_page=True)
    page.close()
    return seen


def card_matches_summary(rows: list[list[str]], summary: dict) -> list[str]:
    """The decision card's rows whose score or interval is not summary.json's, as shown."""
    wrong = []
    for task, _tier, cell, score, *_ in rows:
        entry = summary["tasks"][task]
        values = entry["cells"][cell.lower()]
        key = entry["ranked_by"]
        low, high = values[f"{key}_ci95"]
        form = "{:.1f}" if key == "perplexity" else "{:.1%}"
        expected = f"{form.format(values[key])} [{form.format(low)}, {form.format(high)}]"
        if not score.endswith(expected):
            wrong.append(f"{task} {cell}: {score!r}, summary.json {expected!r}")
    return wrong


def check(browser, html: Path, name: str) -> None:
    summary = json.loads((html.parent / "summary.json").read_text())
    for width in WIDTHS:
        seen = read(browser, html, width, ARTIFACTS / f"{name}-{width}px.png")
        assert seen["errors"] == [] and seen["fetched"] == [], seen
        assert seen["images"] >= 5 and seen["broken_images"] == 0, seen
        assert seen["overflow"] <= 0, f"{name} scrolls sideways at {width} px: {seen}"
        assert len(seen["landed"]) >= 2 and all(seen["landed"]), seen
        where = f"{name} at {width} px"
        assert seen["wide_folded_open"] == [], f"{where}, folded sections open: {seen}"
        assert seen["wide_figures_open"] == [] and seen["overflow_open"] <= 0, \
            f"{where}, figures open: {seen}"
        assert len(seen["figures"]) == seen["images"], f"{where}: a figure cannot open: {seen}"
        assert all(abs(drawn - natural) <= 1 for drawn, natural in seen["figures"]), \
            f"{where}: a figure opened below its natural size: {seen['figures']}"
        # each figure at its natural size, a phone column wide (three to a laptop's row); a
        # larger image (a 25-tag confusion matrix) opens at its natural size on a click
        assert seen["shrunk"] == [], f"{where}: images shrunk to fit: {seen['shrunk']}"
        split = {alt.split(":")[0] for alt, _ in seen["alts"] if ":" in alt}
        assert split >= set(PHONE_PANELS), f"{where}: not one image per cell: {seen['alts']}"
        wide = [(alt, w) for alt, w in seen["alts"] if w > seen["column"]
                and not alt.startswith(WIDE_ENOUGH_TO_OPEN)]
        assert wide == [], f"{where}: wider than a phone's column: {wide}"
        if width > 1000:
            assert seen["scrolling_tables"] == [], f"{where}: {seen['scrolling_tables']}"
        assert len(seen["card"]) == sum(len(t["cells"]) for t in summary["tasks"].values())
        assert card_matches_summary(seen["card"], summary) == [], where
        for _, tier in groupby(seen["card"], key=lambda row: (row[0], row[1])):
            cells = [row[2] for row in tier]
            # inside a tier the card keeps every other table's cell order
            assert cells == [c for c in ("RNN", "LSTM", "GRU") if c in cells], where


def test_fresh_report_reads_in_chromium(browser, trained):
    """The report written by this run's real fits (one task, the synthetic sweep)."""
    _params, layout, _, _ = trained
    check(browser, layout.reports / "comparison.html", "fresh-report")


def test_committed_report_reads_in_chromium(browser):
    """The default run's report as committed: three tasks, 19 figures."""
    check(browser, ROOT / "reports" / "comparison.html", "default-report")
