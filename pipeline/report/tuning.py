"""The report's tuning section (tune.enabled): what each cell's study found with the same budget,
what its best settings gained over the untuned ones on the same seeds, and whether tuning
changed the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import TaskParams
from pipeline.paths import Layout
from pipeline.report.comparison import (
    ALPHA,
    compare_cells,
    grouping,
    grouping_words,
    pairwise,
)
from pipeline.report.figures import CELL_NAMES, plot_importance
from pipeline.report.results import CellResult, collect
from pipeline.scoring.stats import p_value, points
from pipeline.tuning.settings import TuningRecord, read_tuning

ROUGH_BELOW = 30  # trials per cell under which the importance shares are called rough
MONITOR_NAMES = {"val_acc": "validation accuracy", "val_entity_f1": "validation entity F1"}


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
    changed = before.sets != after.sets
    if changed:
        change = (f"Tuning changed the verdict: at the untuned settings it was "
                  f"**{grouping_words(before)}**.")
    else:
        reorder = (" (the order inside a tier moved: untuned "
                   f"{grouping_words(before)})"
                   if grouping_words(before) != grouping_words(after) else "")
        change = f"Tuning did not change the verdict{reorder}."
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
        gain = compare_cells(r, base, metric)
        default = "n/a" if record.default_value is None else f"{record.default_value:.2%}"
        best = "n/a" if record.best_value is None else f"{record.best_value:.2%}"
        lines.append(f"| {CELL_NAMES[cell]} | {record.trials} ({record.pruned}) | {default} / "
                     f"{best} (trial {record.best_trial}) | {base.score.mean:.2%} / "
                     f"{r.score.mean:.2%} | {points(gain.diff)} points ({p_value(gain.p)}) |")
        cells[cell] = {"trials": record.trials, "pruned": record.pruned,
                       "best_trial": record.best_trial, "settings": record.settings,
                       f"untuned_{monitor}": record.default_value,
                       f"best_{monitor}": record.best_value,
                       f"untuned_{metric}": base.score.mean, f"tuned_{metric}": r.score.mean,
                       "gain": gain.diff, "p": gain.p, "method": gain.method,
                       "importance": record.importance, "study": record.study}
    better, worse = ([CELL_NAMES[c] for c, v in cells.items() if v["p"] < ALPHA
                      and sign * v["gain"] > 0] for sign in (1, -1))
    moved = [f"significantly better for {', '.join(better)}" if better else "",
             f"significantly worse for {', '.join(worse)} (settings that won on the validation "
             "split did not carry over to the test split)" if worse else ""]
    lines += ["", f"Gain: tuned minus untuned on the test split, "
              f"{next(iter(cells.values()))['method']}: "
              + ("; ".join(m for m in moved if m) or "no significant change for any cell") + ".",
              "", f"Verdict untuned: **{grouping_words(before)}**; tuned: "
              f"**{grouping_words(after)}**: "
              + ("tuning changed it." if changed else "the same tiers."),
              "", "Best settings (the train stages' settings for each cell):", ""]
    lines += [f"- {CELL_NAMES[c]} (trial {records[c].best_trial}): "
              + ", ".join(f"`{k}` {setting(v)}" for k, v in records[c].settings.items())
              for c in tp.cells]
    importance = {c: records[c].importance for c in tp.cells if records[c].importance}
    lines.append("")
    if importance:
        plot_importance(importance, figure)
        lines += [f"![hyperparameter importance]({figure.parent.name}/{figure.name})", "",
                  "Hyperparameter importance (Optuna's fANOVA over each cell's complete trials): "
                  f"the share of the variance of {validation} across trials that each setting "
                  "explains; a setting a cell does not have (the LSTM's forget-gate bias) has "
                  "no bar."
                  + (f" With {tp.tune.trials} trials per cell these shares are rough: fANOVA "
                     f"fits a random forest to {tp.tune.trials} points (Greff et al. ran 200 "
                     "per variant)." if tp.tune.trials < ROUGH_BELOW else ""), ""]
    else:
        lines += ["No hyperparameter importance: no cell's trials differed in score.", ""]
    summary = {"trials": tp.tune.trials, "cells": cells,
               "untuned_tiers": ([[r.cell for r in tier] for tier in before.tiers]
                                 if before.tiers is not None else None),
               "untuned_groups": before.letters,
               "verdict_changed": changed}
    return lines, summary, change
