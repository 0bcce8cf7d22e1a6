"""The report's sections on long-range memory: per task the gradient flow through time and the
gates (from the diagnostics each evaluate stage wrote), and the synthetic long-range sweep
(accuracy against dependency length)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import Params
from pipeline.errors import fail
from pipeline.figures import CELL_COLORS, CELL_NAMES, log_y, plt, save
from pipeline.files import atomic_file, read_json, tree_digest
from pipeline.paths import Layout
from pipeline.synthetic import task_name

REFERENCE_BOUND = 1e-5  # the reference cell equations must match PyTorch's this closely
FLOW_DISTANCES = (1, 5, 10, 20, 40)
SOLVED = 0.9  # test accuracy at which a synthetic task counts as solved


def write_series(path: Path, x_name: str, x: list[Any], series: dict[str, list[Any]]) -> None:
    """A wide CSV (x, one column per cell) for `dvc plots show`."""
    with atomic_file(path) as fh:
        writer = csv.writer(fh)
        writer.writerow([x_name, *series])
        writer.writerows([v, *(s[i] for s in series.values())] for i, v in enumerate(x))


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


# --- the synthetic sweep -------------------------------------------------------------------

def collect_longrange(params: Params, root: Path) -> dict[str, Any] | None:
    """problem -> length -> cell -> test accuracy per seed, with each task's chance level;
    None when no long-range stage has run (e.g. a report over hand-run tasks)."""
    lr = params.longrange
    layouts = {(p, n): Layout(root, task_name(p, n)) for p in lr.problems for n in lr.lengths}
    if not any(layout.prepared.exists() for layout in layouts.values()):
        return None
    out: dict[str, Any] = {}
    for (problem, length), layout in layouts.items():
        try:
            stats = read_json(layout.prepared / "stats.json")
            acc = {cell: [read_json(layout.test_metrics(cell, seed))["accuracy"]
                          for seed in params.seeds] for cell in params.cells}
        except (OSError, ValueError, KeyError) as err:
            fail(f"report: long-range results for {layout.task} are missing or unreadable "
                 f"({err}); run `dvc repro`")
        counts = stats["splits"]["test"]["label_counts"]
        out.setdefault(problem, {})[length] = {
            "accuracy": acc, "chance": max(counts.values()) / sum(counts.values())}
    return out


def longest_solved(by_length: dict[int, Any], cell: str) -> int | None:
    """The longest length up to which every length is solved (mean test accuracy >= 90%)."""
    best = None
    for length in sorted(by_length):
        if np.mean(by_length[length]["accuracy"][cell]) < SOLVED:
            break
        best = length
    return best


def longrange_verdict(results: dict[str, Any], cells: list[str]) -> str:
    parts = []
    for problem, by_length in results.items():
        words = []
        for cell in cells:
            n = longest_solved(by_length, cell)
            words.append(f"{CELL_NAMES[cell]} " + (f"up to {n} steps" if n else
                                                   f"not even {min(by_length)}"))
        parts.append(f"{problem}: " + ", ".join(words))
    return (f"solved (>= {SOLVED:.0%} test accuracy) " + "; ".join(parts)
            + f" (lengths {', '.join(map(str, sorted(next(iter(results.values())))))}).")


def plot_longrange(results: dict[str, Any], cells: list[str], path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(4.8 * len(results), 3.6), squeeze=False)
    for ax, (problem, by_length) in zip(axes[0], results.items(), strict=True):
        lengths = sorted(by_length)
        for cell in cells:
            acc = [by_length[n]["accuracy"][cell] for n in lengths]
            ax.plot(lengths, [np.mean(a) for a in acc], marker="o", label=CELL_NAMES[cell],
                    color=CELL_COLORS[cell])
            if len(acc[0]) > 1:
                ax.fill_between(lengths, [min(a) for a in acc], [max(a) for a in acc],
                                alpha=0.2, color=CELL_COLORS[cell])
        ax.plot(lengths, [by_length[n]["chance"] for n in lengths], "k:", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("dependency length (steps)")
        ax.set_ylabel("test accuracy")
        ax.set_title(problem)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, path)


def longrange_section(params: Params, root: Path, results: dict[str, Any], figures: Path,
                      plots: Path) -> tuple[list[str], dict[str, Any]]:
    """The synthetic sweep: a table and a plot of accuracy against length, and the gradient
    flow at the longest length of each problem."""
    cells, seeds = params.cells, params.seeds
    plot_longrange(results, cells, figures / "longrange_accuracy.png")
    lr = params.longrange
    lines = [
        "## Long-range memory: synthetic tasks", "",
        f"Generated data, no download ({lr.examples:,} sequences per problem and length, "
        "80/10/10 split): **recall** names the first of L symbols (8 kinds); **adding** sums "
        "the two marked digits among L (one in the first tenth, one in the second half). The "
        "cells read left to right and answer at the last step (`longrange.model`), so the "
        "evidence is about L steps back. Accuracy is on the test split"
        + (f", mean of {len(seeds)} seeds (band: their range)" if len(seeds) > 1 else "")
        + ".", "",
        f"Verdict: {longrange_verdict(results, cells)}", "",
        "| problem | length | chance | " + " | ".join(CELL_NAMES[c] for c in cells) + " |",
        "|---|---:|---:|" + "---:|" * len(cells),
    ]
    for problem, by_length in results.items():
        for n in sorted(by_length):
            row = by_length[n]
            lines.append(f"| {problem} | {n} | {row['chance']:.1%} | " + " | ".join(
                f"{np.mean(row['accuracy'][c]):.1%}" for c in cells) + " |")
        write_series(plots / f"longrange_{problem}.csv", "length", sorted(by_length),
                     {c: [float(np.mean(by_length[n]["accuracy"][c])) for n in sorted(by_length)]
                      for c in cells})
    lines += ["", "![accuracy against dependency length](figures/longrange_accuracy.png)", ""]
    summary: dict[str, Any] = {"results": results, "verdict": longrange_verdict(results, cells),
                               "data": []}
    for problem, by_length in results.items():
        name = task_name(problem, max(by_length))
        sub, diag = diagnostics_section(name, Layout(root, name), cells, seeds, figures, plots)
        lines += [f"### Gradient flow and gates: {problem}, length {max(by_length)}", "",
                  *[line for line in sub if not line.startswith("### ")]]
        summary[name] = diag
        for n in sorted(by_length):  # lineage for the provenance table
            prepared = Layout(root, task_name(problem, n)).prepared
            gen = read_json(prepared / "stats.json")["generator"]
            summary["data"].append((task_name(problem, n), f"generated: `{gen}`",
                                    tree_digest(prepared)))
    return lines, summary
