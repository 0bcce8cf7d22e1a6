"""The diagnostics' section of a task: gradient flow over distance and gate statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import fail
from pipeline.files import read_json
from pipeline.paths import Layout
from pipeline.report.figures import CELL_COLORS, CELL_NAMES, log_y, plt, save, write_series

REFERENCE_BOUND = 1e-5  # the reference cell equations must match PyTorch's this closely
FLOW_DISTANCES = (1, 5, 10, 20, 40)


def read_diagnostics(layout: Layout, cells: list[str], seeds: list[int]
                     ) -> dict[str, list[dict[str, Any]]]:
    """cell -> the diagnostics of each seed."""
    out: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        for seed in seeds:
            path = layout.diagnostics(cell, seed)
            try:
                out.setdefault(cell, []).append(read_json(path))
            except (OSError, ValueError) as err:
                fail(f"report: {path} is missing or unreadable ({err}); run `dvc repro`")
    return out


def mean_flow(runs: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """The gradient flow of several seeds: their geometric mean at the distances all reach."""
    common = set.intersection(*(set(r["gradient_flow"]["distance"]) for r in runs))
    distances = sorted(common)
    logs = [[np.log10(max(r["gradient_flow"]["ratio"][r["gradient_flow"]["distance"].index(d)],
                          1e-38)) for d in distances] for r in runs]
    return distances, [float(10 ** v) for v in np.mean(logs, axis=0)] if distances else []


def plot_gradient_flow(flows: dict[str, tuple[list[int], list[float]]], title: str,
                       path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for cell, (d, r) in flows.items():
        ax.plot(d, r, label=CELL_NAMES[cell], color=CELL_COLORS[cell])
    log_y(ax)
    ax.set_xlabel("distance k from the last state (steps)")
    ax.set_ylabel("||dL/dh(T-k)|| / ||dL/dh(T)||")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save(fig, path)


def flow_table(flows: dict[str, tuple[list[int], list[float]]],
               diags: dict[str, list[dict[str, Any]]]) -> list[str]:
    shown = [k for k in FLOW_DISTANCES if any(k in d for d, _ in flows.values())]
    lines = ["| cell | " + " | ".join(f"k = {k}" for k in shown)
             + " | reference vs PyTorch (max abs diff) |",
             "|---|" + "---:|" * (len(shown) + 1)]
    for cell, (d, r) in flows.items():
        diff = max(run["reference_max_abs_diff"] for run in diags[cell])
        check = "ok" if diff <= REFERENCE_BOUND else f"ABOVE {REFERENCE_BOUND:g}"
        lines.append(f"| {CELL_NAMES[cell]} | " + " | ".join(
            f"{r[d.index(k)]:.1e}" if k in d else "" for k in shown)
            + f" | {diff:.1e} ({check}) |")
    return lines


def plot_gates(diags: dict[str, list[dict[str, Any]]], path: Path) -> bool:
    """Median and interquartile band of each gate over positions (first seed); False when no
    compared cell has gates."""
    panels = [(cell, gate, runs[0]["gates"][gate]) for cell, runs in diags.items()
              for gate in runs[0]["gates"]]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False,
                             sharey=True)
    for ax, (cell, gate, g) in zip(axes[0], panels, strict=True):
        ax.fill_between(g["position"], g["q25"], g["q75"], alpha=0.25, color=CELL_COLORS[cell])
        ax.plot(g["position"], g["median"], color=CELL_COLORS[cell])
        ax.set_title(f"{CELL_NAMES[cell]} {gate}", fontsize=10)
        ax.set_xlabel("position (tokens)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gate activation")
    save(fig, path)
    return True


def gate_table(diags: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["| cell | gate | mean | saturated (< 0.1 or > 0.9) | median at first / last "
             "position shown |", "|---|---|---:|---:|---:|"]
    for cell, runs in diags.items():
        for gate in runs[0]["gates"]:
            mean = np.mean([r["gates"][gate]["mean"] for r in runs])
            sat = np.mean([r["gates"][gate]["saturated"] for r in runs])
            med = runs[0]["gates"][gate]["median"]
            lines.append(f"| {CELL_NAMES[cell]} | {gate} | {mean:.3f} | {sat:.1%} | "
                         f"{med[0]:.2f} / {med[-1]:.2f} |")
    return lines


def diagnostics_section(name: str, layout: Layout, cells: list[str], seeds: list[int],
                        figures: Path, plots: Path) -> tuple[list[str], dict[str, Any]]:
    """A task's gradient-flow and gate subsections, their figures and CSVs, and what
    summary.json keeps of them."""
    diags = read_diagnostics(layout, cells, seeds)
    flows = {cell: mean_flow(runs) for cell, runs in diags.items()}
    plot_gradient_flow(flows, f"{name}: gradient flow through time",
                       figures / f"{name}_gradient_flow.png")
    distances = sorted(set.intersection(*(set(d) for d, _ in flows.values())))
    write_series(plots / f"{name}_gradient_flow.csv", "distance", distances,
                 {c: [r[d.index(k)] for k in distances] for c, (d, r) in flows.items()})
    first = diags[cells[0]][0]
    examples, both = first["examples"], first["directions"] == 2
    lines = [
        "### Gradient flow through time", "",
        f"How much of the loss gradient at a sequence's last state is left k steps earlier, "
        f"through the recurrence alone (top layer; geometric mean over {examples} test "
        "sequences" + (", both directions" if both else "")
        + (f" and {len(seeds)} seeds" if len(seeds) > 1 else "") + "). A plain RNN's falls "
        "off geometrically; gates let LSTM and GRU keep it.", "",
        *flow_table(flows, diags), "",
        f"![gradient flow](figures/{name}_gradient_flow.png)", "",
        "Computed by replaying each trained network with the textbook cell equations; the "
        "last column is how far that replay is from PyTorch's own kernels on the same batch.",
        "",
    ]
    if plot_gates(diags, figures / f"{name}_gates.png"):
        lines += ["### Gates", "", *gate_table(diags), "",
                  f"![gates](figures/{name}_gates.png)", "",
                  "First layer, forward direction, over the test sample: median and quartiles "
                  "per position (PyTorch's GRU keeps the old state where `update` is near 1).",
                  ""]
    summary = {"gradient_flow": {c: {"distance": d, "ratio": r} for c, (d, r) in flows.items()},
               "reference_max_abs_diff": {c: max(r["reference_max_abs_diff"] for r in runs)
                                          for c, runs in diags.items()}}
    return lines, summary
