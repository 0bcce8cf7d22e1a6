"""The cells compared: ranking, pairwise tests, the verdict, and accuracy by length."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.report.figures import CELL_NAMES
from pipeline.report.results import CellResult
from pipeline.scoring.stats import (
    Comparison,
    Spread,
    bootstrap_interval,
    p_value,
    paired_bootstrap,
    paired_t,
    plain_words,
    points,
    ratio,
    seeds_needed,
)

ALPHA = 0.05  # a difference is significant below this two-sided p


def compare_cells(a: CellResult, b: CellResult, metric: str) -> Comparison:
    """a vs b on the headline metric: with several seeds a paired t-test over them (it tests
    the mean of per-seed scores, which is what the cells are ranked by), with one a paired
    bootstrap over test examples."""
    if len(a.runs) >= 2:
        test = paired_t(a.seed_scores(metric), b.seed_scores(metric))
        if test is not None:
            return test
    return paired_bootstrap(a.num, a.den, b.num, b.den)


def ranked(results: list[CellResult]) -> list[CellResult]:
    return sorted(results, key=lambda r: -r.score.mean)


Tests = dict[tuple[str, str], Comparison]


def pairwise(results: list[CellResult], metric: str) -> Tests:
    """Every ordered pair of cells (a, b) -> a vs b; each pair is tested once, its mirror is
    the same test with the difference negated."""
    tests: Tests = {}
    order = ranked(results)
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            test = compare_cells(a, b, metric)
            tests[a.cell, b.cell] = test
            tests[b.cell, a.cell] = replace(test, diff=-test.diff)
    return tests


def tiers(results: list[CellResult], tests: Tests) -> list[list[CellResult]]:
    """The ranked cells cut into tiers: a cell joins the tier above unless it is significantly
    worse than that tier's best cell."""
    order = ranked(results)
    out = [[order[0]]]
    for r in order[1:]:
        test = tests[out[-1][0].cell, r.cell]
        if test.diff > 0 and test.p < ALPHA:
            out.append([r])
        else:
            out[-1].append(r)
    return out


def tier_words(groups: list[list[CellResult]]) -> str:
    """`LSTM = GRU > RNN`."""
    return " > ".join(" = ".join(CELL_NAMES[r.cell] for r in tier) for tier in groups)


def winner(results: list[CellResult], tests: Tests) -> str | None:
    """The best cell, only if it beats every other cell significantly."""
    best, *rest = ranked(results)
    beaten = all(tests[best.cell, r.cell].diff > 0 and tests[best.cell, r.cell].p < ALPHA
                 for r in rest)
    return best.cell if rest and beaten else None


def verdict(results: list[CellResult], label: str, tests: Tests,
            spread: Spread | None = None) -> str:
    """The tiers the evidence supports (a winner only if it beats every other cell
    significantly), each cell's score and each gap to the best with its p-value; with one seed,
    what the test covers and how many seeds would settle the closest call."""
    order = ranked(results)
    best = order[0]
    name, seeds = CELL_NAMES[best.cell], len(best.runs)
    over = f" (mean of {seeds} seeds)" if seeds > 1 else ""
    scores = ", ".join(f"{CELL_NAMES[r.cell]} {r.score.mean:.1%}" for r in order)
    if len(order) == 1:
        return f"Only {name} was trained: test {label} {best.score.mean:.1%}{over}."
    groups = tiers(results, tests)
    against = [tests[best.cell, r.cell] for r in order[1:]]
    gaps = "; ".join(plain_words(name, CELL_NAMES[r.cell], t, method=False)
                     for r, t in zip(order[1:], against, strict=True))
    if winner(results, tests):
        head = f"**{name} wins** on test {label}: it beats every other cell significantly"
    elif len(groups) == 1:
        head = f"**No significant difference** between the cells on test {label}"
    else:
        head = (f"**{tier_words(groups)}** on test {label} (`=`: no significant difference "
                "from the best cell of its tier)")
    text = f"{head}. {scores}{over}. {gaps}; {against[0].method}."
    if seeds == 1:
        text += " " + one_seed_caveat(order, spread)
    return text


def one_seed_caveat(order: list[CellResult], spread: Spread | None) -> str:
    """What a one-seed test says, and the seeds that would settle the closest call."""
    first, second = order[0], order[1]
    words = ("With one seed the test resamples test examples: it says how sure the ranking is "
             "on this test sample, not whether another seed would keep it.")
    gap = first.score.mean - second.score.mean
    if spread is None or first.cell not in spread.sd or second.cell not in spread.sd:
        return words + " Run 3 or more seeds (`-S 'seeds=[1,2,3]'`) to measure that."
    sd = float(np.hypot(spread.sd[first.cell], spread.sd[second.cell]))
    n = seeds_needed(gap, sd)
    pair = f"{CELL_NAMES[first.cell]} and {CELL_NAMES[second.cell]}"
    need = (f"about {n} seeds would detect a true gap of {100 * gap:.2f} points between {pair} "
            "at 80% power" if n else f"no practical number of seeds would separate {pair}")
    return f"{words} From {spread.source}, {need} (`-S 'seeds=[...]'`)."


def significance_table(results: list[CellResult], tests: Tests) -> list[str]:
    """Row cell minus column cell on the headline metric, in points, with its p-value."""
    cells = [r.cell for r in results]
    lines = ["| row - column | " + " | ".join(CELL_NAMES[c] for c in cells) + " |",
             "|---|" + "---:|" * len(cells)]
    for a in cells:
        lines.append(f"| {CELL_NAMES[a]} | " + " | ".join(
            "" if a == b else f"{points(tests[a, b].diff)} ({p_value(tests[a, b].p)})"
            for b in cells) + " |")
    method = next(iter(tests.values())).method if tests else ""
    return [*lines, "", f"Test: {method}; two-sided, significant below p = 0.05."]


@dataclass(frozen=True)
class Bucket:
    tokens: str  # e.g. 12-30
    examples: int


@dataclass(frozen=True)
class ByLength:
    """The headline metric per length bucket of the test examples: per cell its values and
    their 95% intervals, one per bucket."""

    buckets: list[Bucket]
    cells: dict[str, list[float]]
    ci95: dict[str, list[list[float]]]


def by_length(results: list[CellResult], lengths: np.ndarray) -> ByLength:
    """The headline metric per length quartile of the test examples, per cell (seeds pooled),
    with its 95% bootstrap interval over the bucket's examples: where a cell's memory gives
    out, its scores fall with length, and the interval says whether the fall is more than a
    quarter of the test sample's noise."""
    edges = sorted({int(np.quantile(lengths, q)) for q in (0.25, 0.5, 0.75)})
    bucket = np.searchsorted(edges, lengths, side="left")  # length <= edge i -> bucket i
    buckets = []
    for b in np.unique(bucket):
        inside = lengths[bucket == b]
        buckets.append(Bucket(f"{inside.min()}-{inside.max()}", int(inside.size)))
    cells, intervals = {}, {}
    for r in results:
        parts = [(r.num[bucket == b], r.den[bucket == b]) for b in np.unique(bucket)]
        cells[r.cell] = [ratio(num, den) for num, den in parts]
        intervals[r.cell] = [list(bootstrap_interval(num, den, samples=2_000))
                             for num, den in parts]
    return ByLength(buckets, cells, intervals)


def length_table(lengths: ByLength, results: list[CellResult]) -> list[str]:
    lines = ["| length (tokens) | examples | " + " | ".join(CELL_NAMES[r.cell] for r in results)
             + " |", "|---|---:|" + "---:|" * len(results)]
    for i, b in enumerate(lengths.buckets):
        cells = []
        for r in results:
            low, high = lengths.ci95[r.cell][i]
            cells.append(f"{lengths.cells[r.cell][i]:.1%} [{low:.1%}, {high:.1%}]")
        lines.append(f"| {b.tokens} | {b.examples:,} | " + " | ".join(cells) + " |")
    return [*lines, "", "In brackets: 95% bootstrap interval over the bucket's test examples."]


def per_label_table(results: list[CellResult]) -> list[str]:
    """F1 per label (or per entity type, for NER) with one column per cell (mean over seeds)."""
    sample = results[0].runs[0].per_label
    first = sample.scores
    lines = [f"| {sample.kind} | support | " + " | ".join(f"{CELL_NAMES[r.cell]} F1"
                                                         for r in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    for name in sorted(first, key=lambda k: -first[k].support):
        cells = " | ".join(f"{r.per_label_f1(name):.3f}" for r in results)
        lines.append(f"| `{name}` | {first[name].support:,} | {cells} |")
    return lines
