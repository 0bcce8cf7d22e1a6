"""The report as Markdown and as one self-contained HTML file, with its provenance."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from pipeline import tracking
from pipeline.config import PARAMS_FILE, Params
from pipeline.errors import fail
from pipeline.report.card import TIMING_NOTE
from pipeline.report.figures import panels


def provenance(params: Params, root: Path, data: list[tuple[str, str, str]],
               cpus: list[str]) -> list[str]:
    """What produced the report: the commit, the CPU the fits ran on, every task's data hashes,
    and params.yaml."""
    git = tracking.git_info(root)
    try:
        text = (root / PARAMS_FILE).read_text(encoding="utf-8")
    except OSError as err:
        fail(f"report: {root / PARAMS_FILE}: unreadable ({err})")
    dirty = (" with uncommitted changes (e.g. `dvc exp run -S ...`)"
             if git["dirty"] == "true" else "")
    digest = hashlib.sha256(text.encode()).hexdigest()
    store = tracking.shown_uri(tracking.tracking_uri(params, root), root)
    lines = ["## Provenance", "",
             f"- Code: git commit `{git['commit']}`{dirty}.",
             f"- Params: `{PARAMS_FILE}` as below (sha256 `{digest}`).",
             f"- Runs: MLflow store `{store}` (`rnnbench ui` opens it). The run ids in this "
             "report are that store's, on the machine that ran it; the store is not committed, "
             "so a clone's `make run` records its own runs, with new ids.",
             f"- CPU of the fits: {', '.join(cpus) or 'none recorded'}. The same commit and "
             "params give the same numbers on this CPU type only: float kernels round "
             "differently per instruction set (measured once, on an earlier version of the "
             "default run, docs/design.md: sentiment identical on an AVX2 and an AVX-512 "
             "machine; POS, NER and the long-range sweep not, NER's RNN entity F1 33.7 on "
             "one against 36.8 on the other, enough to reorder the cells).",
             "- Data (the prepared tensors' hash is what each MLflow run records as `data_hash`):",
             "", "| task | source (sha256) | prepared data (hash) |", "|---|---|---|"]
    lines += [f"| {name} | {src} | `{prepared}` |" for name, src, prepared in data]
    return [*lines, "", "```yaml", text.rstrip(), "```", ""]


def count(n: int, noun: str) -> str:
    """`1 seed`, `3 tasks`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def settings_words(params: Params) -> str:
    """At which settings the cells met: the verdicts hold for those, not for each cell's best."""
    if params.tune.enabled:
        return ("each cell at the best settings of its own study (the same budget for every "
                "cell; Tuning, per task).")
    changed = sorted(c for c in params.cells if params.overrides.get(c))
    return ("at shared settings (params.yaml's `model` and `train`"
            + (f", with `overrides` for {', '.join(changed)}" if changed else "")
            + "; the defaults were chosen on the validation splits, never on test: "
            "docs/defaults.md), not tuned per cell (`tune.enabled: false`): a cell that needs "
            "other settings may rank otherwise at its own best.")


def render_markdown(params: Params, sections: dict[str, list[str]], verdicts: dict[str, str],
                    card: list[str], longrange: tuple[list[str], str] | None,
                    tail: list[str]) -> str:
    """Verdicts and the decision card first, then a section per task, the long-range sweep
    and the provenance."""
    lines = ["# RNN vs LSTM vs GRU", "",
             f"{count(len(params.cells), 'cell')} compared on "
             f"{count(len(params.tasks), 'task')}, {count(len(params.seeds), 'seed')} each, "
             f"{settings_words(params)}", ""]
    lines += [f"- **{name}**: {verdicts[name]}" for name in params.tasks]
    if longrange is not None:
        lines.append(f"- **long range** (synthetic): {longrange[1]}")
    lines += ["", "**Decision card.** Each cell's test score with its 95% interval (over seeds and "
              "the test sample, or over the test sample with one seed; resampling whole "
              "split groups, e.g. movies), grouped as the tests "
              "support: every pair of cells is tested, the p-values Holm-adjusted per task; "
              "cells in one tier do not differ significantly and each beats every cell of the "
              "tiers below (tier 1 first); where no order of tiers fits the tests, letters "
              "instead (cells sharing a letter do not differ significantly). Next to it, what "
              "each cell costs.", "",
              panels("decision card", "figures/decision_card", list(params.tasks)), "", *card,
              "", TIMING_NOTE, ""]
    for name in params.tasks:
        lines += sections[name]
    if longrange is not None:
        lines += longrange[0]
    return "\n".join([*lines, *tail])


HTML_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #1d1d1f; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d0d0d7; padding: 3px 8px; }
td { white-space: nowrap; }  /* an interval reads on one line; wide tables scroll */
td code { white-space: normal; }  /* a run id wraps before the table outgrows the column */
/* where a table still scrolls (a phone), its first column, the cell or task, stays in view */
td:first-child, th:first-child { position: sticky; left: 0; }
td:first-child { background: #fff; }
th { background: #f2f2f5; }
td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
pre { overflow-x: auto; background: #f7f7f9; padding: 0.6em; }
nav.toc { background: #f7f7f9; padding: 0.4em 1em; border-radius: 4px; }
nav.toc ul { margin: 0.2em 0; padding-left: 1.2em; }
details { margin: 0.8em 0; }
summary { cursor: pointer; font-weight: 600; font-size: 1.05em; }
details.provenance td { white-space: normal; text-align: left; overflow-wrap: break-word; }
/* the images of a figure drawn one per cell or task: side by side where they fit, else one
   under another, each at its natural size while the column allows */
div.figures { display: flex; flex-wrap: wrap; gap: 0 6px; align-items: flex-start; }
/* an image fits the column; a click (or tap) opens it at its natural size, scrolling in its
   own box, and another fits it again: no script, one copy of the image */
details.figure { margin: 0.4em 0; overflow-x: auto; max-width: 100%; }
details.figure > summary { display: block; list-style: none; cursor: zoom-in;
                           font-weight: normal; }
details.figure > summary::-webkit-details-marker { display: none; }
details.figure[open] > summary { cursor: zoom-out; }
details.figure[open] img { max-width: none; }
@media (max-width: 600px) { body { font-size: 14px; margin: 1em auto; } }
code { background: #f2f2f5; padding: 0 3px; border-radius: 3px; font-size: 12px;
       overflow-wrap: anywhere; }  /* a hash or a path wraps rather than widen the page */
h2 { border-bottom: 1px solid #d0d0d7; margin-top: 2em; }
"""


def render_html(markdown: str, folder: Path) -> str:
    """The Markdown report as one HTML file that opens offline: figures embedded as data URIs,
    no scripts, no external styles."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)

    def embed(match: re.Match[str]) -> str:
        data = base64.b64encode((folder / match.group(1)).read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="(figures/[^"]+\.png)"', embed, body)
    body = FIGURE.sub(figure_row, body)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>rnnbench: RNN vs LSTM vs GRU</title><style>{HTML_STYLE}</style></head>"
            f"<body>\n{navigable(body)}</body></html>\n")


# a figure: an image, or the images of one drawn per cell or task, alone in their paragraph
FIGURE = re.compile(r"<p>((?:<img [^>]*>\s*)+)</p>")


def figure_row(match: re.Match[str]) -> str:
    """A figure's images as a row that wraps, each opening at its natural size on a click."""
    images = re.findall(r"<img [^>]*>", match.group(1))
    return ('<div class="figures">' + "".join(
        f'<details class="figure"><summary title="click: full size; again: fit">{img}'
        "</summary></details>" for img in images) + "</div>")


HEADING = re.compile(r"<h([23])>(.*?)</h\1>", re.DOTALL)
# Long reference sections start folded: the verdicts, tables and figures come first.
FOLDED = ("Data", "Settings", "Provenance")


def slug(html: str, taken: set[str]) -> str:
    """An anchor from a heading's text, unique in the page."""
    base = re.sub(r"[^a-z0-9]+", "-", re.sub(r"<[^>]+>", "", html).lower()).strip("-")
    name, n = base or "section", 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def navigable(body: str) -> str:
    """Anchors on every section heading, a table of contents of the task sections after the
    title, and the long reference sections (data, settings, provenance) folded."""
    taken: set[str] = set()
    starts = [m.start() for m in HEADING.finditer(body)]
    parts = [body[: starts[0]] if starts else body]
    toc = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(body)
        match = HEADING.match(body, start)
        assert match is not None
        level, title = match.group(1), match.group(2)
        anchor = slug(title, taken)
        rest = body[match.end():end]
        plain = re.sub(r"<[^>]+>", "", title)
        if level == "2":
            toc.append(f'<li><a href="#{anchor}">{title}</a></li>')
        if plain.startswith(FOLDED):
            kind = ' class="provenance"' if plain.startswith("Provenance") else ""
            parts.append(f'<details id="{anchor}"{kind}><summary>{title}</summary>{rest}'
                         "</details>\n")
        else:
            parts.append(f'<h{level} id="{anchor}">{title}</h{level}>{rest}')
    nav = f'<nav class="toc"><strong>Contents</strong><ul>{"".join(toc)}</ul></nav>\n'
    head, *sections = parts
    # the contents go after the title and the verdicts, before the first section
    return head + (nav if toc else "") + "".join(sections)
