"""The report's figures: the file-only backend, the cells' names and colours, one way to save;
the learning curves, accuracy by length and confusion matrices; and the CSV series behind
them for `dvc plots show`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only, no display: chosen before pyplot loads

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogFormatter, MaxNLocator

from pipeline.files import atomic_file
from pipeline.report.results import CellResult

if TYPE_CHECKING:  # comparison.py draws with these figures
    from pipeline.report.comparison import ByLength

plt.rcParams["text.parse_math"] = False  # labels such as Brown's `nn$` are text, not math
CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
CELL_COLORS = {"rnn": "C0", "lstm": "C1", "gru": "C2"}  # the same cell, the same colour
MAX_CONFUSION_LABELS = 25  # larger tag sets: plot the most frequent gold labels


def log_y(ax: plt.Axes) -> None:
    """A log y axis labelled 1e-03, 1e-02, ...: matplotlib's default labels are math, which
    `text.parse_math = False` would print as raw `$\\mathdefault{10^{-3}}$`."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


# One panel of a figure drawn one image per cell: 357 px at save()'s 110 dpi, at its natural
# size in a 400 px phone's column and three to the 1,100 px column of a laptop.
PANEL_INCHES = 3.25


def panel_file(stem: str, part: str) -> str:
    """The image of one cell (or task) of a figure drawn one image each:
    `pos_learning_curves_lstm.png`."""
    return f"{stem}_{part}.png"


def panels(alt: str, stem: str, parts: list[str]) -> str:
    """A figure drawn one image per cell (or task) as one Markdown paragraph, which the HTML
    report lays out as a row that wraps (render.py): side by side on a laptop, one under
    another, each at its natural size, on a phone."""
    return " ".join(f"![{alt}: {CELL_NAMES.get(p, p)}]({panel_file(stem, p)})" for p in parts)


def save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_by_length(lengths: ByLength, label: str, path: Path) -> None:
    """Each cell's score per length quartile in %, with its 95% interval as a bar (cells set
    slightly apart so that the bars do not hide each other)."""
    fig, ax = plt.subplots(figsize=(PANEL_INCHES, 3.0))
    ticks = [b.tokens for b in lengths.buckets]
    cells = list(lengths.cells)
    for k, (cell, values) in enumerate(lengths.cells.items()):
        x = np.arange(len(values)) + 0.08 * (k - (len(cells) - 1) / 2)
        low, high = np.array(lengths.ci95[cell]).T
        v = np.array(values)
        ax.errorbar(x, 100 * v, yerr=[100 * (v - low), 100 * (high - v)], marker="o",
                    capsize=3, label=CELL_NAMES[cell], color=CELL_COLORS[cell])
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set_xlabel("test length (tokens), quartiles")
    ax.set_ylabel(f"test {label} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)


CURVE_NAMES = {"loss": "loss", "acc": "accuracy", "entity_f1": "entity F1",
               "ppl": "perplexity"}


def plot_learning_curves(results: list[CellResult], folder: Path, stem: str) -> None:
    """Each cell's learning curves as its own image (draw_learning_curves)."""
    for cell, fig in draw_learning_curves(results):
        save(fig, folder / panel_file(stem, cell))


def draw_learning_curves(results: list[CellResult]) -> list[tuple[str, plt.Figure]]:
    """Loss and the metric that picks the kept epoch (accuracy; validation entity F1 for NER)
    per epoch: the mean over seeds, and their range as a band; accuracy and F1 in %, as every
    table gives them. One figure per cell (loss above, score below), their y axes shared as
    one figure's panels would be, so that the cells' images compare at a glance."""
    drawn = []
    for r in results:
        fig, axes = plt.subplots(2, 1, figsize=(PANEL_INCHES, 5.4), sharex=True)
        score = {"val_entity_f1": "entity_f1", "val_ppl": "ppl"}.get(r.train.monitor, "acc")
        for ax, metric in zip(axes, ("loss", score), strict=True):
            scale = 100.0 if metric in ("acc", "entity_f1") else 1.0
            for split, style in (("train", "-"), ("val", "--")):
                key = f"{split}_{metric}"
                by_epoch: dict[int, list[float]] = {}
                for run in r.runs:
                    for h in run.history:
                        if key in h:
                            by_epoch.setdefault(int(h["epoch"]), []).append(scale * h[key])
                epochs = sorted(by_epoch)
                if not epochs:  # entity F1 is measured on the validation split only
                    continue
                # the cell's own colour, as in every figure; train solid, validation dashed
                ax.plot(epochs, [np.mean(by_epoch[e]) for e in epochs], style, marker="o",
                        label=split, color=CELL_COLORS[r.cell],
                        markerfacecolor=CELL_COLORS[r.cell] if split == "train" else "white")
                if len(r.runs) > 1:
                    ax.fill_between(epochs, [min(by_epoch[e]) for e in epochs],
                                    [max(by_epoch[e]) for e in epochs], alpha=0.2,
                                    color=CELL_COLORS[r.cell])
            if len(r.runs) == 1 and r.train.best_epoch:
                ax.axvline(r.train.best_epoch, color="grey", lw=0.8, ls=":")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("cross-entropy" if metric == "loss" else
                          CURVE_NAMES[metric] + (" (%)" if scale == 100.0 else ""))
            ax.set_title(f"{CELL_NAMES[r.cell]}: {CURVE_NAMES[metric]}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        axes[-1].set_xlabel("epoch")
        drawn.append((r.cell, fig, axes))
    for row in range(2):  # one scale per row across the cells' images
        limits = [axes[row].get_ylim() for _, _, axes in drawn]
        for _, _, axes in drawn:
            axes[row].set_ylim(min(lo for lo, _ in limits), max(hi for _, hi in limits))
    return [(cell, fig) for cell, fig, _ in drawn]


def plot_confusions(results: list[CellResult], label: str, folder: Path, stem: str) -> None:
    """Row-normalized confusion matrices (% of each actual label, or of each gold entity
    type), one image per cell titled with its ranking score, all the size of the largest;
    tag sets above MAX_CONFUSION_LABELS keep their most frequent labels. A small matrix is
    one phone-column panel (PANEL_INCHES); a large one grows so that its numbers stay 8 pt
    (three POS matrices in one image were shown at 54% on a laptop, 6 px high)."""
    matrices = []
    for r in results:
        c = r.confusion
        keep = sorted(range(len(c.rows)), key=lambda i: -sum(c.counts[i]))
        keep = sorted(keep[:MAX_CONFUSION_LABELS])
        names = [c.rows[i] for i in keep]
        columns = [j for j, name in enumerate(c.columns) if name in names or name not in c.rows]
        counts = np.array([[c.counts[i][j] for j in columns] for i in keep], dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        share = 100 * counts / np.maximum(totals, 1)
        rows = [f"{name} ({int(n):,})" for name, n in zip(names, totals[:, 0], strict=True)]
        matrices.append((r, rows, [c.columns[j] for j in columns], share))
    side = max(PANEL_INCHES, 0.36 * max(len(m[2]) for m in matrices) + 1.8)
    for r, rows, columns, share in matrices:
        fig, ax = plt.subplots(figsize=(side, side))
        ax.imshow(share, cmap="Blues", vmin=0, vmax=100, aspect="auto")
        for i, row in enumerate(share):
            for j, v in enumerate(row):
                if v >= 0.5:
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8,
                            color="white" if v > 50 else "black")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual (count)")
        ax.set_title(f"{CELL_NAMES[r.cell]}: {label} {r.score.mean:.1%}", fontsize=10)
        save(fig, folder / panel_file(stem, r.cell))


def plot_importance(importance: dict[str, dict[str, float]], path: Path) -> None:
    """Each cell's fANOVA importance per tuned setting, as bars side by side (cells in their
    colours; a setting a cell was not tuned on has no bar)."""
    keys = sorted({k for values in importance.values() for k in values})
    fig, ax = plt.subplots(figsize=(PANEL_INCHES, 0.45 * len(keys) * len(importance) + 1.2))
    height = 0.8 / len(importance)
    for k, (cell, values) in enumerate(importance.items()):
        y = np.arange(len(keys)) + height * (k - (len(importance) - 1) / 2)
        ax.barh(y, [values.get(key, 0.0) for key in keys], height, label=CELL_NAMES[cell],
                color=CELL_COLORS[cell])
    ax.set_yticks(range(len(keys)), keys)
    ax.invert_yaxis()
    ax.set_xlabel("importance\n(share of the validation score's variance)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3, axis="x")
    ax.legend()
    save(fig, path)


def write_series(path: Path, x_name: str, x: list[Any], series: dict[str, list[Any]]) -> None:
    """A wide CSV (x, one column per cell) for `dvc plots show`."""
    with atomic_file(path) as fh:
        writer = csv.writer(fh)
        writer.writerow([x_name, *series])
        writer.writerows([v, *(s[i] for s in series.values())] for i, v in enumerate(x))


def plot_context_cut(curves: dict[str, dict[str, float]], path: Path) -> None:
    """Each cell's test perplexity against the context it may read (last k tokens, log axis),
    its whole-context perplexity as a dotted line in its colour."""
    fig, ax = plt.subplots(figsize=(PANEL_INCHES, 3.0))
    for cell, curve in curves.items():
        ks = [int(k) for k in curve if k != "all"]
        ax.plot(ks, [curve[str(k)] for k in ks], marker="o", color=CELL_COLORS[cell],
                label=CELL_NAMES[cell])
        ax.axhline(curve["all"], color=CELL_COLORS[cell], ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])  # the k measured, as plain numbers
    ax.minorticks_off()
    log_y(ax)  # perplexity falls by factors; a linear axis flattens the curves past k = 10
    ax.set_xlabel("context: the last k tokens (dotted: all)")
    ax.set_ylabel("test perplexity (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)
