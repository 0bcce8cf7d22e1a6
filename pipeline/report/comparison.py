"""The cells compared: ranking, pairwise tests, the verdict, and accuracy by length."""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
from scipy import stats as sps

from pipeline.report.figures import CELL_NAMES
from pipeline.report.results import CellResult
from pipeline.scoring.examples import by_group
from pipeline.scoring.stats import (
    Comparison,
    bootstrap_interval,
    p_value,
    paired_bootstrap,
    plain_words,
    points,
    ratio,
    seeds_needed,
    two_level_bootstrap,
)

ALPHA = 0.05  # a difference is significant below this two-sided p


def compare_cells(a: CellResult, b: CellResult, metric: str) -> Comparison:
    """a vs b on the headline metric (the mean of per-seed scores, which ranks the cells): with
    several seeds a two-level bootstrap over seeds and test groups, with one a paired
    bootstrap over test groups (which says nothing of retraining)."""
    (na, da), (nb, db) = a.grouped, b.grouped
    if len(a.runs) >= 2 and len(b.runs) == len(a.runs):
        return two_level_bootstrap(na, da, nb, db, unit=a.unit)
    return paired_bootstrap(na.sum(0), da.sum(0), nb.sum(0), db.sum(0), unit=a.unit)


def ranked(results: list[CellResult]) -> list[CellResult]:
    return sorted(results, key=lambda r: -r.score.mean)


Tests = dict[tuple[str, str], Comparison]


def holm(tests: list[Comparison]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979) of a family of p-values, in their order: with
    every pair of cells tested, the chance of any false "significant" stays at ALPHA. A few
    lines here rather than a statsmodels dependency for one use (tested by hand)."""
    m = len(tests)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: tests[i].p)):
        running = max(running, min(1.0, (m - rank) * tests[i].p))
        adjusted[i] = running
    return adjusted


def pairwise(results: list[CellResult], metric: str) -> Tests:
    """Every ordered pair of cells (a, b) -> a vs b, its p-value Holm-adjusted over the task's
    pairs; each pair is tested once, its mirror is the same test with the difference negated."""
    order = ranked(results)
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    raw = [compare_cells(a, b, metric) for a, b in pairs]
    tests: Tests = {}
    for (a, b), test, p in zip(pairs, raw, holm(raw), strict=True):
        method = test.method + (f", Holm-adjusted over {len(pairs)} pairs" if len(pairs) > 1
                                else "")
        tests[a.cell, b.cell] = replace(test, p=p, method=method)
        tests[b.cell, a.cell] = replace(test, p=p, method=method, diff=-test.diff)
    return tests


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def differ(tests: Tests, a: str, b: str) -> bool:
    return tests[a, b].p < ALPHA


@dataclass(frozen=True)
class Grouping:
    """What the tests support about a task's cells, and nothing more: `letters` is a compact
    letter display (cells sharing a letter do not differ significantly; cells with none in
    common do), and `tiers` a strict order of tiers (every cell of a tier significantly better
    than every cell below it, none within a tier) where the tests give one, else None."""

    order: list[CellResult]  # best first
    letters: dict[str, str]
    tiers: list[list[CellResult]] | None

    @property
    def sets(self) -> set[frozenset[str]]:
        """The cells each letter groups: the verdict, blind to the order within a group."""
        return {frozenset(c for c, ls in self.letters.items() if letter in ls)
                for letter in set("".join(self.letters.values()))}


def grouping(results: list[CellResult], tests: Tests) -> Grouping:
    """The maximal sets of cells no two of which differ significantly, best first, one letter
    each: a pair shares a set exactly when its test is not significant."""
    order = ranked(results)
    cells = [r.cell for r in order]
    sets: list[set[str]] = []
    for size in range(len(cells), 0, -1):
        for combo in combinations(cells, size):
            if (not any(differ(tests, a, b) for a, b in combinations(combo, 2))
                    and not any(set(combo) <= s for s in sets)):
                sets.append(set(combo))
    sets.sort(key=lambda s: sorted(cells.index(c) for c in s))
    letters = {c: "".join(LETTERS[i] for i, s in enumerate(sets) if c in s) for c in cells}
    ordered = [[r for r in order if r.cell in s] for s in sets]
    strict = all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:]) and all(
        tests[a.cell, b.cell].diff > 0 for i, upper in enumerate(ordered)
        for lower in ordered[i + 1:] for a in upper for b in lower)
    return Grouping(order, letters, ordered if strict else None)


def tier_words(groups: list[list[CellResult]]) -> str:
    """`LSTM = GRU > RNN`."""
    return " > ".join(" = ".join(CELL_NAMES[r.cell] for r in tier) for tier in groups)


def grouping_words(g: Grouping) -> str:
    """`LSTM = GRU > RNN` where the tests give tiers, else `LSTM (a), GRU (ab), RNN (b)`."""
    if g.tiers is not None:
        return tier_words(g.tiers)
    return ", ".join(f"{CELL_NAMES[r.cell]} ({g.letters[r.cell]})" for r in g.order)


def winner(results: list[CellResult], tests: Tests) -> str | None:
    """The best cell, only if it beats every other cell significantly."""
    best, *rest = ranked(results)
    beaten = all(tests[best.cell, r.cell].diff > 0 and differ(tests, best.cell, r.cell)
                 for r in rest)
    return best.cell if rest and beaten else None


def verdict(results: list[CellResult], label: str, tests: Tests, metric: str = "accuracy"
            ) -> str:
    """What the tests support, and only that: a winner if it beats every other cell
    significantly, tiers where the tests give a strict order of them, else a letter display;
    each cell's score and every pair's difference with its adjusted p-value; with one seed,
    what the test covers; with 3 or more, how many seeds would settle an unsettled top pair."""
    order = ranked(results)
    best = order[0]
    name, seeds = CELL_NAMES[best.cell], len(best.runs)
    over = f" (mean of {seeds} seeds)" if seeds > 1 else ""
    scores = ", ".join(f"{CELL_NAMES[r.cell]} {r.score.mean:.1%}" for r in order)
    if len(order) == 1:
        return f"Only {name} was trained: test {label} {best.score.mean:.1%}{over}."
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    gaps = "; ".join(plain_words(CELL_NAMES[a.cell], CELL_NAMES[b.cell], tests[a.cell, b.cell],
                                 method=False) for a, b in pairs)
    head = verdict_head(results, tests, label)
    text = f"{head}. {scores}{over}. {gaps}; {tests[pairs[0][0].cell, pairs[0][1].cell].method}."
    first, second = order[0], order[1]
    if seeds == 1:
        text += (f" With one seed the test resamples {first.unit}: it says how sure the "
                 "ranking is on this test sample, not whether another seed would keep it. Run "
                 "3 or more seeds (`-S 'seeds=[1,2,3]'`) to measure that.")
    elif not differ(tests, first.cell, second.cell):
        text += " " + seeds_caveat(first, second, metric)
    return text


def verdict_head(results: list[CellResult], tests: Tests, label: str,
                 wins: str = "it beats every other cell significantly",
                 better: str = "significantly better") -> str:
    """The verdict's first words: a winner, one tier, tiers, or the letter display."""
    g = grouping(results, tests)
    if winner(results, tests):
        return f"**{CELL_NAMES[ranked(results)[0].cell]} wins** on test {label}: {wins}"
    if g.tiers is not None and len(g.tiers) == 1:
        return f"**No significant difference** between the cells on test {label}"
    if g.tiers is not None:
        return (f"**{tier_words(g.tiers)}** on test {label} (every pair tested: `>` "
                f"{better}, `=` no significant difference)")
    return (f"**{grouping_words(g)}** on test {label} (every pair tested: cells sharing a "
            "letter do not differ significantly; no order of tiers fits all the tests)")


def seeds_caveat(first: CellResult, second: CellResult, metric: str) -> str:
    """How many seeds would settle the top pair, from this run's own seeds: the spread of
    their per-seed differences, with its 95% interval (chi-square), carried into the count.
    Two seeds give a spread too rough to plan with; no stored spread from older code stands in."""
    pair = f"{CELL_NAMES[first.cell]} and {CELL_NAMES[second.cell]}"
    diffs = np.array([getattr(a.test, metric) - getattr(b.test, metric)
                      for a, b in zip(first.runs, second.runs, strict=True)])
    n = diffs.size
    if n < 3:
        return (f"{n} seeds cannot say how many would separate {pair}: run 3 or more "
                "(`-S 'seeds=[1,2,3]'`).")
    gap, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    low, high = (sd * float(np.sqrt((n - 1) / sps.chi2.ppf(q, n - 1))) for q in (0.975, 0.025))
    need = [seeds_needed(gap, x) for x in (sd, low, high)]
    if need[0] is None:
        return (f"At the observed gap ({points(gap)} points, per-seed differences spread "
                f"{100 * sd:.2f} points over these {n} seeds) no practical number of seeds "
                f"would separate {pair}.")
    span = f"{need[1]} and {need[2] or 'more than 1000'}"
    return (f"From these {n} seeds (per-seed differences spread {100 * sd:.2f} points, 95% "
            f"interval {100 * low:.2f}-{100 * high:.2f}), about {need[0]} seeds (between "
            f"{span}) would detect a true gap of {100 * abs(gap):.2f} points between {pair} at "
            "80% power (paired t over seeds; the test sample's own noise stays).")


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
    with its 95% bootstrap interval over the bucket's test groups: where a cell's memory gives
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
        parts = [(by_group(r.num[bucket == b], r.groups[bucket == b]),
                  by_group(r.den[bucket == b], r.groups[bucket == b])) for b in np.unique(bucket)]
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
    return [*lines, "", f"In brackets: 95% bootstrap interval over the bucket's {results[0].unit}."]


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
