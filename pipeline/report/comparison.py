"""The cells compared: ranking, pairwise tests, the verdict, and accuracy by length."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.report.figures import CELL_NAMES
from pipeline.report.stats import (
    Comparison,
    p_value,
    paired_bootstrap,
    paired_t,
    plain_words,
    ratio,
)


def compare_cells(a: dict[str, Any], b: dict[str, Any], metric: str) -> Comparison:
    """a vs b on the headline metric: a paired t-test over seeds with 3 or more seeds, else a
    paired bootstrap over test examples (the same examples and seeds for both)."""
    if len(a["runs"]) >= 3:
        test = paired_t([r["test"][metric] for r in a["runs"]],
                        [r["test"][metric] for r in b["runs"]])
        if test is not None:
            return test
    return paired_bootstrap(a["num"], a["den"], b["num"], b["den"])


def ranked(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(results, key=lambda r: -r["score"].mean)


Tests = dict[tuple[str, str], Comparison]


def pairwise(results: list[dict[str, Any]], metric: str) -> Tests:
    """Every ordered pair of cells (a, b) -> a vs b; each pair is tested once, its mirror is
    the same test with the difference negated."""
    tests: Tests = {}
    order = ranked(results)
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            test = compare_cells(a, b, metric)
            tests[a["cell"], b["cell"]] = test
            tests[b["cell"], a["cell"]] = replace(test, diff=-test.diff)
    return tests


def verdict(results: list[dict[str, Any]], label: str, tests: Tests) -> str:
    """The winner, its margin over each other cell, and whether each margin is significant."""
    order = ranked(results)
    best = order[0]
    name, seeds = CELL_NAMES[best["cell"]], len(best["runs"])
    over = f" (mean of {seeds} seeds)" if seeds > 1 else ""
    if len(order) == 1:
        return f"Only {name} was trained: test {label} {best['score'].mean:.1%}{over}."
    against = [tests[best["cell"], r["cell"]] for r in order[1:]]
    words = [plain_words(name, CELL_NAMES[r["cell"]], t, method=False)
             for r, t in zip(order[1:], against, strict=True)]
    return (f"**{name} wins** on test {label} with {best['score'].mean:.1%}{over}. "
            + "; ".join(words) + f"; {against[0].method}.")


def significance_table(results: list[dict[str, Any]], tests: Tests) -> list[str]:
    """Row cell minus column cell on the headline metric, in points, with its p-value."""
    cells = [r["cell"] for r in ranked(results)]
    lines = ["| row - column | " + " | ".join(CELL_NAMES[c] for c in cells) + " |",
             "|---|" + "---:|" * len(cells)]
    for a in cells:
        lines.append(f"| {CELL_NAMES[a]} | " + " | ".join(
            "" if a == b else f"{100 * tests[a, b].diff:+.1f} ({p_value(tests[a, b].p)})"
            for b in cells) + " |")
    method = next(iter(tests.values())).method if tests else ""
    return [*lines, "", f"Test: {method}; two-sided, significant below p = 0.05."]


def by_length(results: list[dict[str, Any]], lengths: np.ndarray) -> dict[str, Any]:
    """The headline metric per length quartile of the test examples, per cell (seeds pooled):
    where a cell's memory gives out, its scores fall with length."""
    edges = sorted({int(np.quantile(lengths, q)) for q in (0.25, 0.5, 0.75)})
    bucket = np.searchsorted(edges, lengths, side="left")  # length <= edge i -> bucket i
    buckets = []
    for b in np.unique(bucket):
        inside = lengths[bucket == b]
        buckets.append({"tokens": f"{inside.min()}-{inside.max()}", "examples": int(inside.size)})
    cells = {r["cell"]: [ratio(r["num"][bucket == b], r["den"][bucket == b])
                         for b in np.unique(bucket)] for r in results}
    return {"buckets": buckets, "cells": cells}


def length_table(lengths: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    lines = ["| length (tokens) | examples | " + " | ".join(CELL_NAMES[r["cell"]] for r in results)
             + " |", "|---|---:|" + "---:|" * len(results)]
    for i, b in enumerate(lengths["buckets"]):
        lines.append(f"| {b['tokens']} | {b['examples']:,} | " + " | ".join(
            f"{lengths['cells'][r['cell']][i]:.2%}" for r in results) + " |")
    return lines


def per_label_table(results: list[dict[str, Any]]) -> list[str]:
    """F1 per label (or per entity type, for NER) with one column per cell (mean over seeds)."""
    def f1(r: dict[str, Any], name: str) -> float:
        values = [run["per_label"].get("entities", run["per_label"]).get(name, {}).get("f1", 0)
                  for run in r["runs"]]
        return sum(values) / len(values)

    sample = results[0]["runs"][0]["per_label"]
    first = sample.get("entities", sample)
    kind = "entity type" if "entities" in sample else "label"
    lines = [f"| {kind} | support | " + " | ".join(f"{CELL_NAMES[r['cell']]} F1"
                                                  for r in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    for name in sorted(first, key=lambda k: -first[k]["support"]):
        cells = " | ".join(f"{f1(r, name):.3f}" for r in results)
        lines.append(f"| `{name}` | {first[name]['support']:,} | {cells} |")
    return lines
