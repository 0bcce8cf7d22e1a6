"""The decision card at the top of the report: per task, each cell's ranking metric with its 95%
interval, cells grouped as the tests support (tiers, or a letter display where no order of
tiers fits), next to what each cell costs (parameters, training time, inference throughput):
the whole decision on one screen."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.report.comparison import Grouping
from pipeline.report.figures import CELL_COLORS, CELL_NAMES, PANEL_INCHES, panel_file, plt, save
from pipeline.report.results import CellResult
from pipeline.scoring.stats import Summary

PERPLEXITY = "perplexity"  # the language models' label (scoring/examples.headline)

# (label, key in a cell's averaged test metrics, axis label)
COSTS = (("parameters", "num_parameters", "parameters (millions)"),
         ("train time", "train_seconds", "train time (s)"),
         ("inference", "inference_examples_per_s", "inference (examples/s)"))
FORMATS = {"num_parameters": lambda v: f"{v / 1e6:.2f} M",
           "train_seconds": lambda v: f"{v:.0f} s",
           "inference_examples_per_s": lambda v: f"{v:,.0f}/s"}


Card = list[tuple[str, str, Grouping]]  # per task: name, metric's name, what the tests support


def in_cell_order(cells: list[CellResult]) -> list[CellResult]:
    """RNN, LSTM, GRU: the order of every other table and figure. Inside a tier the cells do
    not differ significantly, so a sort by score would rank what the tests did not."""
    return sorted(cells, key=lambda r: list(CELL_NAMES).index(r.cell))


def boxes(g: Grouping) -> list[tuple[str, str, list[CellResult]]]:
    """The card's boxes, best first, as (the table's tier column, the figure's label, cells
    in RNN, LSTM, GRU order): the tiers where the tests give them, else each cell alone with
    its letters (in cell order: letters rank nothing)."""
    if g.tiers is None:
        return [(g.letters[r.cell], f"group {', '.join(g.letters[r.cell])}", [r])
                for r in in_cell_order(g.order)]
    if len(g.tiers) == 1:
        return [("1", "tied: no significant difference", in_cell_order(g.tiers[0]))]
    return [(str(i), f"tier {i}", in_cell_order(tier)) for i, tier in enumerate(g.tiers, start=1)]


def card_table(tasks: Card) -> list[str]:
    """One row per task and cell, the best tier first: tier (or letters), score [95%
    interval], costs."""
    lines = ["| task | tier | cell | score [95% interval] | parameters | train time (s) | "
             "inference (examples/s) |", "|---|---:|---|---:|---:|---:|---:|"]
    for name, label, g in tasks:
        for tier, _, cells in boxes(g):
            for r in cells:
                t = r.test
                mean, low, high = shown(label, r.score)
                form = "{:.1f}" if label == PERPLEXITY else "{:.1%}"
                lines.append(
                    f"| {name} | {tier} | {CELL_NAMES[r.cell]} | {label} {form.format(mean)} "
                    f"[{form.format(low)}, {form.format(high)}] | "
                    f"{t.num_parameters / 1e6:.2f} M | "
                    f"{timing(r, 'train_seconds', '{:.0f}')} | "
                    f"{timing(r, 'inference_examples_per_s', '{:,.0f}')} |")
    return lines


def shown(label: str, sc: Summary) -> tuple[float, float, float]:
    """A ranking score as the report shows it: a fraction, or for a language model (ranked
    by log-likelihood per token) its perplexity, whose interval's ends swap."""
    if label == PERPLEXITY:
        return math.exp(-sc.mean), math.exp(-(sc.high or sc.mean)), math.exp(-(sc.low or sc.mean))
    return sc.mean, sc.low if sc.low is not None else sc.mean, \
        sc.high if sc.high is not None else sc.mean


def timing(r: CellResult, key: str, form: str) -> str:
    """A cost measured once per seed: the mean ± sd over seeds, or the one pass marked `¹`."""
    values = [getattr(run.test, key) for run in r.runs]
    if len(values) == 1:
        return form.format(values[0]) + " ¹"
    sd = float(np.std(values, ddof=1))
    return f"{form.format(float(np.mean(values)))} ± {form.format(sd)}"


TIMING_NOTE = ("Times: one timed pass per seed (¹: a single pass; with several seeds, mean ± sd "
               "over them), taken while other stages ran on the other cores, so they carry that "
               "noise: read ratios, not small differences.")


def plot_card(tasks: Card, path: Path) -> None:
    """The whole card in one image, a row of panels per task (README.md shows it; the report
    gives each task its own, plot_task_cards)."""
    height = sum(1.2 + 0.42 * len(g.order) for _, _, g in tasks)
    fig, axes = plt.subplots(len(tasks), 1 + len(COSTS), squeeze=False, figsize=(11, height),
                             gridspec_kw={"width_ratios": [2.6, 1, 1, 1]})
    for row, task in zip(axes, tasks, strict=True):
        draw_task(list(row), task, cost_labels=False)
    save(fig, path)


def plot_task_cards(tasks: Card, folder: Path, stem: str) -> None:
    """One image per task, a phone column wide (PANEL_INCHES): the score, then each cost,
    one panel under another."""
    for task in tasks:
        n = len(task[2].order)  # cells
        heights = [0.8 + 0.42 * n] + [0.55 + 0.22 * n] * len(COSTS)  # inches per panel
        fig, axes = plt.subplots(len(heights), 1, figsize=(PANEL_INCHES, sum(heights) + 0.6),
                                 gridspec_kw={"height_ratios": heights})
        draw_task(list(axes), task, cost_labels=True)
        save(fig, folder / panel_file(stem, task[0]))


def draw_task(axes: list[plt.Axes], task: tuple[str, str, Grouping], cost_labels: bool) -> None:
    """One task's panels: dot and whisker of the ranking metric (tiers boxed, best on top),
    then one bar panel per cost, each cell in its own colour; the cells named beside the
    cost bars too where those panels stand apart from the score's (`cost_labels`)."""
    name, label, g = task
    groups = boxes(g)
    order = [r for _, _, cells in groups for r in cells]
    # top to bottom: the best box first, a gap between boxes
    y, pos = {}, 0.0
    for _, _, cells in groups:
        for r in cells:
            y[r.cell] = -pos
            pos += 1
        pos += 0.5
    ax = axes[0]
    for i, (_, tag, cells) in enumerate(groups):
        top, bottom = y[cells[0].cell], y[cells[-1].cell]
        ax.axhspan(bottom - 0.4, top + 0.4, color="0.93" if i % 2 == 0 else "0.97", zorder=0)
        if len(groups) == 1:  # "tied: ...", too long to sit beside a whisker: above them
            ax.text(0.995, top + 0.45, tag, transform=ax.get_yaxis_transform(),
                    ha="right", va="bottom", fontsize=8, color="0.35")
            ax.set_ylim(bottom - 0.5, top + 0.95)
        else:
            ax.text(0.995, top + 0.25, tag, transform=ax.get_yaxis_transform(),
                    ha="right", va="center", fontsize=8, color="0.35")
    scale = 1 if label == PERPLEXITY else 100
    for r in order:
        mean, low, high = (scale * v for v in shown(label, r.score))
        ax.errorbar(mean, y[r.cell], xerr=[[mean - low], [high - mean]],
                    fmt="o", color=CELL_COLORS[r.cell], capsize=4, lw=2, ms=7)
    ax.set_yticks([y[r.cell] for r in order], [CELL_NAMES[r.cell] for r in order])
    ax.set_xlabel(f"test {label}, 95% interval\n(lower is better)" if label == PERPLEXITY
                  else f"test {label} (%), 95% interval")
    ax.set_title(name, loc="left", fontsize=11, fontweight="bold")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.15)
    for ax, (_, key, axis_label) in zip(axes[1:], COSTS, strict=True):
        values = [getattr(r.test, key) for r in order]
        scale = 1e6 if key == "num_parameters" else 1.0
        bars = ax.barh([y[r.cell] for r in order], [v / scale for v in values],
                       color=[CELL_COLORS[r.cell] for r in order], height=0.6)
        ax.bar_label(bars, [FORMATS[key](v) for v in values], padding=3, fontsize=8)
        ax.set_xlim(0, max(values) / scale * 1.45)
        ax.set_ylim(axes[0].get_ylim())  # each bar level with its cell's dot
        ax.set_yticks([y[r.cell] for r in order],
                      [CELL_NAMES[r.cell] for r in order] if cost_labels else [])
        ax.set_xlabel(axis_label)
        ax.grid(axis="x", alpha=0.3)
