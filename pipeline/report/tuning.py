"""The report's tuning section (tune.enabled): what each cell's study found with the same budget,
what its best settings gained over the untuned ones on the same seeds, and whether tuning
changed the verdict."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.paths import Layout
from pipeline.report.comparison import (
    ALPHA,
    Grouping,
    compare_cells,
    grouping,
    grouping_words,
    holm,
    pairwise,
)
from pipeline.report.figures import CELL_NAMES, plot_importance
from pipeline.report.language_model import lower
from pipeline.report.results import CellResult, collect
from pipeline.scoring.stats import detectable_gap, p_value, points
from pipeline.tuning.settings import PERMUTATIONS, TuningRecord, read_tuning

MONITOR_NAMES = {"val_acc": "validation accuracy", "val_entity_f1": "validation entity F1",
                 "val_ppl": "validation perplexity"}


@dataclass(frozen=True)
class Shown:
    """How the section writes a validation score, a test score and a gain: fractions in %
    and gains in points; a language model's perplexities as they are, its test scores
    (log-likelihood per token) as perplexities and a gain as how much lower the perplexity."""

    validation: Callable[[float], str]
    score: Callable[[float], str]
    gain: Callable[[float], str]


def shown_for(metric: str) -> Shown:
    if metric == "log_likelihood":
        return Shown(lambda v: f"{v:.1f}", lambda s: f"{math.exp(-s):.1f}",
                     lambda d: f"perplexity {lower(d)}")
    return Shown(lambda v: f"{v:.2%}", lambda s: f"{s:.2%}", lambda d: f"{points(d)} points")


PERCENT = shown_for("accuracy")


def setting(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def budget_line(tp: TaskParams) -> str:
    tune = tp.tune
    pruner = (f"median pruner after {tune.startup_trials} trial(s), from epoch "
              f"{tune.warmup_epochs + 1}" if tune.pruner == "median" else "no pruner")
    epochs = tune.max_epochs or tp.train.max_epochs
    return (f"Every cell got the same budget: {tune.trials} trials of Optuna's TPE sampler "
            f"(seed {tune.sampler_seed}), up to {epochs} epochs each, {pruner}; trials fit on "
            "the training split and are scored on the validation split (the test split is "
            "never read while tuning). Trial 0 is the untuned settings. The comparison above "
            "trains each cell at its best trial's settings; the same seeds were also trained "
            "at the untuned settings for the table below.")


def tuning_section(tp: TaskParams, layout: Layout, results: list[CellResult], metric: str,
                   label: str, figure: Path) -> tuple[list[str], dict[str, Any], str]:
    """(the section's lines, summary.json's `tuning` entry, the sentence the verdict gains)."""
    records: dict[str, TuningRecord] = {c: read_tuning(layout.tuning(c)) for c in tp.cells}
    untuned = collect(tp, layout.as_untuned())
    by_cell = {r.cell: r for r in untuned}
    before = grouping(untuned, pairwise(untuned, metric))
    after = grouping(results, pairwise(results, metric))
    gains = cell_gains(results, by_cell, metric)
    shown = shown_for(metric)
    changed, change = verdict_change(before, after, gains, shown)
    seeds = len(tp.seeds)
    monitor = results[0].train.monitor  # what the trials were scored by, too
    validation = MONITOR_NAMES.get(monitor, monitor)
    lines = ["### Tuning", "", budget_line(tp), "",
             f"| cell | trials (pruned) | {validation}: untuned / best trial | test {label}: "
             f"untuned / tuned{' (mean of ' + str(seeds) + ' seeds)' if seeds > 1 else ''} | "
             "gain (p) |", "|---|---:|---:|---:|---:|"]
    cells: dict[str, Any] = {}
    for r in results:
        cell, record, base = r.cell, records[r.cell], by_cell[r.cell]
        gain = gains[cell]
        default = "n/a" if record.default_value is None else shown.validation(
            record.default_value)
        best = "n/a" if record.best_value is None else shown.validation(record.best_value)
        lines.append(f"| {CELL_NAMES[cell]} | {record.trials} ({record.pruned}) | {default} / "
                     f"{best} (trial {record.best_trial}) | {shown.score(base.score.mean)} / "
                     f"{shown.score(r.score.mean)} | {shown.gain(gain.diff)} "
                     f"({p_value(gain.p)}) |")
        cells[cell] = {"trials": record.trials, "pruned": record.pruned,
                       "best_trial": record.best_trial, "settings": record.settings,
                       f"untuned_{monitor}": record.default_value,
                       f"best_{monitor}": record.best_value,
                       f"untuned_{metric}": base.score.mean, f"tuned_{metric}": r.score.mean,
                       "gain": gain.diff, "p": gain.p, "method": gain.method,
                       "detectable_gain": gain.detectable,
                       "importance": record.importance, "importance_p": record.importance_p,
                       "study": record.study}
    better, worse = ([CELL_NAMES[c] for c, v in cells.items() if v["p"] < ALPHA
                      and sign * v["gain"] > 0] for sign in (1, -1))
    moved = [f"significantly better for {', '.join(better)}" if better else "",
             f"significantly worse for {', '.join(worse)} (settings that won on the validation "
             "split did not carry over to the test split)" if worse else ""]
    lines += ["", f"Gain: tuned minus untuned on the test split, "
              f"{next(iter(cells.values()))['method']}, Holm-adjusted over the cells: "
              + ("; ".join(m for m in moved if m) or "no significant change for any cell")
              + f". {power_words(gains, shown)}",
              "", f"Verdict untuned: **{grouping_words(before)}**; tuned: "
              f"**{grouping_words(after)}**. {change}",
              "", "Best settings (the train stages' settings for each cell):", ""]
    lines += [f"- {CELL_NAMES[c]} (trial {records[c].best_trial}): "
              + ", ".join(f"`{k}` {setting(v)}" for k, v in records[c].settings.items())
              for c in tp.cells]
    lines += ["", *importance_lines(tp, records, validation, figure)]
    summary = {"trials": tp.tune.trials, "cells": cells,
               "untuned_tiers": ([[r.cell for r in tier] for tier in before.tiers]
                                 if before.tiers is not None else None),
               "untuned_groups": before.letters,
               "verdicts_differ": before.sets != after.sets, "verdict_changed": changed}
    return lines, summary, change


@dataclass(frozen=True)
class Gain:
    """A cell tuned vs untuned on the same seeds: the test, its p Holm-adjusted over the
    task's cells, and the gap the test would find 80% of the time (None with one seed)."""

    diff: float
    p: float
    method: str
    detectable: float | None


def cell_gains(results: list[CellResult], untuned: dict[str, CellResult], metric: str
               ) -> dict[str, Gain]:
    tests = [compare_cells(r, untuned[r.cell], metric) for r in results]
    out = {}
    for r, test, p in zip(results, tests, holm(tests), strict=True):
        diffs = [getattr(a.test, metric) - getattr(b.test, metric)
                 for a, b in zip(r.runs, untuned[r.cell].runs, strict=True)]
        sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan
        out[r.cell] = Gain(test.diff, p, test.method, detectable_gap(sd, len(diffs)))
    return out


def verdict_change(before: Grouping, after: Grouping, gains: dict[str, Gain],
                   shown: Shown = PERCENT) -> tuple[bool, str]:
    """Whether tuning changed the verdict, said only from a test of the change itself: the
    two verdicts differing proves nothing when no cell's score moved significantly (each
    verdict is cut at 0.05 on its own noise)."""
    if before.sets == after.sets:
        reorder = (f" (the order inside a tier moved: untuned {grouping_words(before)})"
                   if grouping_words(before) != grouping_words(after) else "")
        return False, f"Tuning did not change the verdict{reorder}."
    moved = [f"{CELL_NAMES[c]} {shown.gain(g.diff)} ({p_value(g.p)})"
             for c, g in gains.items() if g.p < ALPHA]
    if moved:
        return True, (f"Tuning changed the verdict: at the untuned settings it was "
                      f"**{grouping_words(before)}**, and tuning moved {', '.join(moved)}.")
    return False, (f"The untuned settings gave another verdict (**{grouping_words(before)}**), "
                   "but no cell's score changed significantly with tuning: the two verdicts "
                   "differ within the noise of each, which is no evidence that tuning "
                   "changed the ranking.")


def power_words(gains: dict[str, Gain], shown: Shown = PERCENT) -> str:
    """What a non-significant gain rules out."""
    known = {c: g.detectable for c, g in gains.items() if g.detectable is not None}
    if not known:
        return ("With one seed the test covers the test sample only, and no power can be "
                "estimated: retraining alone may move a cell as much.")
    return ("Power: with these seeds a true change of "
            + ", ".join(f"{shown.gain(d).lstrip('+')} ({CELL_NAMES[c]})"
                        for c, d in known.items())
            + " would be found 80% of the time (paired t over the seeds' differences); smaller "
            "changes may go unseen.")


def importance_lines(tp: TaskParams, records: dict[str, TuningRecord], validation: str,
                     figure: Path) -> list[str]:
    """The importance figure, only for cells whose largest fANOVA share stands out from the
    same trials with shuffled scores; otherwise why not."""
    shown = {c: r.importance for c, r in records.items()
             if r.importance and r.importance_p is not None and r.importance_p < ALPHA}
    tested = {c: r.importance_p for c, r in records.items() if r.importance_p is not None}
    hidden = [f"{CELL_NAMES[c]} ({p_value(p)})" for c, p in tested.items() if c not in shown]
    why = (f"Not shown for {', '.join(hidden)}: the largest share is no larger than the same "
           "trials give with their scores shuffled (a permutation test, "
           f"{PERMUTATIONS} shuffles); fANOVA's shares sum to 1, so noise alone crowns a "
           "setting with a third or more of them at any trial count." if hidden else "")
    if not shown:
        if not tested:
            return ["No hyperparameter importance: no cell's trials differed in score.", ""]
        return [f"No hyperparameter importance with {tp.tune.trials} trials per cell. {why}",
                ""]
    plot_importance(shown, figure)
    return [f"![hyperparameter importance]({figure.parent.name}/{figure.name})", "",
            "Hyperparameter importance (Optuna's fANOVA over each cell's complete trials): the "
            f"share of the variance of {validation} across trials that each setting explains, "
            "for the cells whose largest share beats shuffled scores (p < 0.05); a setting a "
            f"cell does not have (the LSTM's forget-gate bias) has no bar. {why}", ""]
