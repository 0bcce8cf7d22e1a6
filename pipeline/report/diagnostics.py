"""The diagnostics' section of a task: gradient flow over distance and gate statistics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RnnbenchError, fail
from pipeline.paths import Layout
from pipeline.report.figures import (
    CELL_COLORS,
    CELL_NAMES,
    PANEL_INCHES,
    log_y,
    panel_file,
    panels,
    plt,
    save,
    write_series,
)
from pipeline.report.render import count
from pipeline.scoring.records import Diagnostics
from pipeline.scoring.records import read_diagnostics as read_one

REFERENCE_BOUND = 1e-5  # the reference cell equations must match PyTorch's this closely
FLOW_DISTANCES = (1, 5, 10, 20, 40)


Diags = dict[str, list[Diagnostics]]  # cell -> each seed's


def read_diagnostics(layout: Layout, cells: list[str], seeds: list[int]) -> Diags:
    """cell -> the diagnostics of each seed."""
    out: Diags = {}
    for cell in cells:
        for seed in seeds:
            path = layout.diagnostics(cell, seed)
            try:
                out.setdefault(cell, []).append(read_one(path))
            except (OSError, ValueError, RnnbenchError) as err:
                fail(f"report: {path} is missing or unreadable ({err}); run `dvc repro`")
    return out


@dataclass(frozen=True)
class Flow:
    """A cell's gradient flow: the ratio at each distance (geometric mean over seeds; 0 where
    it vanished below float64's range) and how many sequences each distance rests on."""

    distance: list[int]
    ratio: list[float]
    sequences: list[int]


def mean_flow(runs: list[Diagnostics]) -> Flow:
    """The gradient flow of several seeds: their geometric mean at the distances all reach."""
    flows = [r.gradient_flow for r in runs]
    distances = sorted(set.intersection(*(set(f.distance) for f in flows)))
    at = [{d: i for i, d in enumerate(f.distance)} for f in flows]
    ratios, sequences = [], []
    for d in distances:
        values = [f.ratio[a[d]] for f, a in zip(flows, at, strict=True)]
        ratios.append(0.0 if min(values) <= 0 else float(10 ** np.mean(np.log10(values))))
        # the same seeded sample for every seed, counted once per direction read
        sequences.append(min(f.sequences[a[d]] // r.directions
                             for f, a, r in zip(flows, at, runs, strict=True)))
    return Flow(distances, ratios, sequences)


def plot_gradient_flow(flows: dict[str, Flow], title: str, path: Path) -> None:
    """The ratio per distance on a log scale, and below it how many sequences each distance
    rests on (the curve stops where fewer than a tenth of the sample remain)."""
    fig, (ax, count) = plt.subplots(2, 1, figsize=(PANEL_INCHES, 4.2), sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1]})
    # a dash pattern and marker per cell: where two curves coincide, both still show
    styles = [("-", "o"), ("--", "s"), (":", "^")]
    for i, (cell, f) in enumerate(flows.items()):
        shown = [(d, r) for d, r in zip(f.distance, f.ratio, strict=True) if r > 0]
        line, marker = styles[i % len(styles)]
        ax.plot(*zip(*shown, strict=True), line, marker=marker, markevery=max(1, len(shown) // 8),
                markersize=4, label=CELL_NAMES[cell], color=CELL_COLORS[cell], lw=1.6)
    log_y(ax)
    ax.set_ylabel("||dL/dh(T-k)|| / ||dL/dh(T)||")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    f = next(iter(flows.values()))
    count.step(f.distance, f.sequences, where="mid", color="0.4")
    count.set_ylim(0, max(f.sequences, default=1) * 1.1)
    count.set_ylabel("sequences", fontsize=9)
    count.set_xlabel("distance k from the last state")
    count.grid(alpha=0.3)
    save(fig, path)


def flow_table(flows: dict[str, Flow], diags: Diags) -> list[str]:
    reach = set.intersection(*(set(f.distance) for f in flows.values()))
    shown = [k for k in FLOW_DISTANCES if k in reach]
    if reach and max(reach) not in shown:
        shown.append(max(reach))  # the farthest distance enough sequences reach
    lines = ["| cell | " + " | ".join(f"k = {k}" for k in shown)
             + " | reference vs PyTorch (max abs diff) |",
             "|---|" + "---:|" * (len(shown) + 1)]
    for cell, f in flows.items():
        diff = max(run.reference_max_abs_diff for run in diags[cell])
        check = "ok" if diff <= REFERENCE_BOUND else f"ABOVE {REFERENCE_BOUND:g}"
        lines.append(f"| {CELL_NAMES[cell]} | " + " | ".join(
            f"{f.ratio[f.distance.index(k)]:.1e}" for k in shown) + f" | {diff:.1e} ({check}) |")
    f = next(iter(flows.values()))
    lines.append("| sequences | " + " | ".join(f"{f.sequences[f.distance.index(k)]:,}"
                                               for k in shown) + " | |")
    return lines


STEADY_FIT = 0.9  # R^2 of a line through log10(ratio) against k
STEADY_PARTS = 1.5  # the most the rates of the curve's thirds may differ, as a factor


def trend(f: Flow) -> str:
    """How the drawn curve runs (k >= 1), said only as far as the curve shows it: where it
    turns, if it falls and then climbs back above twice its lowest point; a rate ("a factor
    of 10 every N steps") only where the curve falls at least tenfold over the distances
    measured (no rate extrapolated past them), a line through log10(ratio) fits it and its
    thirds fall at about that one rate; otherwise how far it falls, or its values
    halfway and at the end. A line through a curve that falls and then rises, or falls
    fast then slowly, would describe neither part."""
    points = [(d, r) for d, r in zip(f.distance, f.ratio, strict=True) if d >= 1 and r > 0]
    if len(points) < 2:
        return "no steady fall"
    ks = np.array([d for d, _ in points], dtype=float)
    logs = np.log10([r for _, r in points])
    low = int(np.argmin(logs))
    if low < len(points) - 1 and logs[-1] - logs[low] > np.log10(2):
        return (f"down to {10 ** logs[low]:.1e} at k = {ks[low]:.0f}, then up to "
                f"{10 ** logs[-1]:.1e} at k = {ks[-1]:.0f}")
    fall = logs[0] - logs[-1]
    if fall < np.log10(1.5):
        return "no steady fall"
    if fall < 1:
        return f"down only {10 ** fall:.1f}-fold over k = {ks[0]:.0f}-{ks[-1]:.0f}"
    slope, intercept = np.polyfit(ks, logs, 1)
    spread = float(((logs - logs.mean()) ** 2).sum())
    fit = 1 - float(((logs - slope * ks - intercept) ** 2).sum()) / spread if spread else 0.0
    # the rate over each third of the curve (thirds sharing their ends)
    ends = [0, len(points) // 3, 2 * len(points) // 3, len(points) - 1]
    rates = [np.polyfit(ks[a:b + 1], logs[a:b + 1], 1)[0]
             for a, b in pairwise(ends) if b > a]
    half = len(points) // 2
    if fit >= STEADY_FIT and max(rates) < 0 and max(rates) / min(rates) >= 1 / STEADY_PARTS:
        return f"a factor of 10 every {count(round(-1 / slope), 'step')}"
    return (f"{10 ** logs[half]:.1e} at k = {ks[half]:.0f}, {10 ** logs[-1]:.1e} at "
            f"k = {ks[-1]:.0f}: not at a steady rate")


def flow_words(flows: dict[str, Flow]) -> str:
    """What the measured curves show: each cell's ratio at the farthest distance all reach,
    how it falls, and which cell keeps the most there, and, where the curves cross, which
    keeps the most at most distances."""
    common = sorted(set.intersection(*(set(f.distance) for f in flows.values())))
    far = max(common, default=0)
    if far < 2:
        return "The sample's sequences are too short to trace the gradient back."
    at = {cell: dict(zip(f.distance, f.ratio, strict=True)) for cell, f in flows.items()}
    kept = {cell: at[cell][far] for cell in flows}
    parts = []
    for cell, f in flows.items():
        parts.append(f"{CELL_NAMES[cell]} {kept[cell]:.1e} ({trend(f)})")
    order = sorted(kept, key=lambda c: -kept[c])
    words = f"Measured here, k = {far} steps back: " + ", ".join(parts) + "."
    if len(order) > 1:
        words += (f" At k = {far}, {CELL_NAMES[order[0]]} keeps the most of it"
                  f" and {CELL_NAMES[order[-1]]} the least.")
        distances = [k for k in common if k >= 1]
        ahead = Counter(max(flows, key=lambda c: at[c][k]) for k in distances)
        lead, times = ahead.most_common(1)[0]
        if lead != order[0]:
            words += (f" The curves cross: {CELL_NAMES[lead]} keeps the most at {times} of "
                      f"the {len(distances)} distances.")
    return words


def plot_gates(diags: Diags, folder: Path, stem: str) -> list[str]:
    """Median and interquartile band of each gate over positions (first seed): one image per
    cell that has gates, its gates one under another; the cells drawn (none: no compared cell
    has gates)."""
    cells = [cell for cell, runs in diags.items() if runs[0].gates]
    for cell in cells:
        gates = diags[cell][0].gates
        fig, axes = plt.subplots(len(gates), 1, figsize=(PANEL_INCHES, 0.6 + 1.8 * len(gates)),
                                 squeeze=False, sharex=True)
        for ax, (gate, g) in zip(axes[:, 0], gates.items(), strict=True):
            ax.fill_between(g.position, g.q25, g.q75, alpha=0.25, color=CELL_COLORS[cell])
            ax.plot(g.position, g.median, color=CELL_COLORS[cell])
            ax.set_title(f"{CELL_NAMES[cell]} {gate}", fontsize=10)
            ax.set_ylabel("activation")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("position (tokens)")
        save(fig, folder / panel_file(stem, cell))
    return cells


def gate_table(diags: Diags) -> list[str]:
    lines = ["| cell | gate | mean | saturated (< 0.1 or > 0.9) | median at first / last "
             "position shown |", "|---|---|---:|---:|---:|"]
    for cell, runs in diags.items():
        for gate in runs[0].gates:
            mean = np.mean([r.gates[gate].mean for r in runs])
            sat = np.mean([r.gates[gate].saturated for r in runs])
            med = runs[0].gates[gate].median
            lines.append(f"| {CELL_NAMES[cell]} | {gate} | {mean:.3f} | {sat:.1%} | "
                         f"{med[0]:.2f} / {med[-1]:.2f} |")
    return lines


def diagnostics_section(name: str, layout: Layout, cells: list[str], seeds: list[int],
                        figures: Path, plots: Path) -> tuple[list[str], dict[str, Any]]:
    """A task's gradient-flow and gate subsections, their figures and CSVs, and what
    summary.json keeps of them."""
    diags = read_diagnostics(layout, cells, seeds)
    flows = {cell: mean_flow(runs) for cell, runs in diags.items()}
    plot_gradient_flow(flows, f"{name}: gradient flow",
                       figures / f"{name}_gradient_flow.png")
    distances = sorted(set.intersection(*(set(f.distance) for f in flows.values())))
    write_series(plots / f"{name}_gradient_flow.csv", "distance", distances,
                 {c: [f.ratio[f.distance.index(k)] for k in distances]
                  for c, f in flows.items()})
    first = diags[cells[0]][0]
    examples, both = first.examples, first.directions == 2
    lines = [
        "### Gradient flow through time", "",
        f"How much of the loss gradient at a sequence's last state is left k steps earlier, "
        f"through the recurrence alone (top layer; geometric mean over {examples} test "
        "sequences" + (", both directions" if both else "")
        + (f" and {len(seeds)} seeds" if len(seeds) > 1 else "") + "; the curve stops where "
        "fewer than a tenth of them reach back that far). " + flow_words(flows), "",
        *flow_table(flows, diags), "",
        f"![gradient flow](figures/{name}_gradient_flow.png)", "",
        "Computed by replaying each trained network with the textbook cell equations; the "
        "last column is how far that replay is from PyTorch's own kernels on the same batch.",
        "",
    ]
    gated = plot_gates(diags, figures, f"{name}_gates")
    if gated:
        lines += ["### Gates", "", *gate_table(diags), "",
                  panels("gates", f"figures/{name}_gates", gated), "",
                  "First layer, forward direction, over the test sample: median and quartiles "
                  "per position (PyTorch's GRU keeps the old state where `update` is near 1).",
                  ""]
    summary = {"gradient_flow": {c: vars(f) for c, f in flows.items()},
               "reference_max_abs_diff": {c: max(r.reference_max_abs_diff for r in runs)
                                          for c, runs in diags.items()}}
    return lines, summary
