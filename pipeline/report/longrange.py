"""The long-range sweep's section: accuracy by sequence length, the longest solved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import Params
from pipeline.config.records import stored
from pipeline.data.records import read_stats
from pipeline.data.synthetic import task_name
from pipeline.errors import RnnbenchError, fail
from pipeline.files import tree_digest
from pipeline.model.record import read_record
from pipeline.paths import Layout
from pipeline.report.caveats import RISING_EPOCHS, best_at_last, climbing, did_not_learn, ran_out
from pipeline.report.diagnostics import diagnostics_section
from pipeline.report.figures import (
    CELL_COLORS,
    CELL_NAMES,
    PANEL_INCHES,
    panel_file,
    panels,
    plt,
    save,
    write_series,
)
from pipeline.report.results import read_history
from pipeline.scoring.records import read_test_metrics
from pipeline.scoring.stats import summarize

SOLVED = 0.9  # test accuracy at which a synthetic task counts as solved


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
            stats = read_stats(layout.prepared)
            acc = {cell: [read_test_metrics(layout.test_metrics(cell, seed)).accuracy
                          for seed in params.seeds] for cell in params.cells}
            records = {cell: [(read_record(layout.model_dir(cell, seed)),
                               read_history(layout.history(cell, seed)))
                              for seed in params.seeds] for cell in params.cells}
        except (OSError, ValueError, KeyError, RnnbenchError) as err:
            fail(f"report: long-range results for {layout.task} are missing or unreadable "
                 f"({err}); run `dvc repro`")
        n = stats.splits["test"].examples
        out.setdefault(problem, {})[length] = {
            "accuracy": acc, "chance": stats.splits["test"].majority(),
            "ci95": {cell: list(interval(a, n)) for cell, a in acc.items()},
            "out_of_epochs": [c for c, rs in records.items() if any(ran_out(r) for r, _ in rs)],
            "best_at_last": [c for c, rs in records.items()
                             if any(best_at_last(r) for r, _ in rs)],
            "still_improving": [c for c, rs in records.items()
                                if any(climbing(r, h) for r, h in rs)]}
    return out


def interval(accuracy: list[float], examples: int) -> tuple[float, float]:
    """95%: over seeds (t) with several, else Wilson's over the test examples with one."""
    if len(accuracy) > 1:
        s = summarize(accuracy)
        return float(s.low), float(s.high)  # type: ignore[arg-type]
    z, p = 1.959964, accuracy[0]
    centre = (p + z * z / (2 * examples)) / (1 + z * z / examples)
    half = z * np.sqrt(p * (1 - p) / examples + z * z / (4 * examples ** 2)) \
        / (1 + z * z / examples)
    # the interval holds p itself (at 0% or 100% it can miss it by a rounding)
    return min(p, float(centre - half)), max(p, float(centre + half))


def longest_solved(by_length: dict[int, Any], cell: str) -> int | None:
    """The longest length up to which every length is solved (mean test accuracy >= 90%)."""
    best = None
    for length in sorted(by_length):
        if np.mean(by_length[length]["accuracy"][cell]) < SOLVED:
            break
        best = length
    return best


def longrange_verdict(results: dict[str, Any], cells: list[str], epochs: int) -> str:
    parts: list[str] = []
    cut: list[tuple[str, bool, bool]] = []  # (cell at problem length, best at last, climbing)
    for problem, by_length in results.items():
        words = []
        for cell in cells:
            n = longest_solved(by_length, cell)
            words.append(f"{CELL_NAMES[cell]} " + (f"up to {n} steps" if n else
                                                   f"not even {min(by_length)}"))
        parts.append(f"{problem}: " + ", ".join(words))
        cut += [(f"{CELL_NAMES[c]} at {problem} {n}", c in row["best_at_last"],
                 c in row["still_improving"])
                for n, row in sorted(by_length.items()) for c in row["out_of_epochs"]
                if np.mean(row["accuracy"][c]) < SOLVED]
    # more epochs may move the limit only where a cell was still at its best when stopped
    caveat = ""
    if cut:
        caveat = f"; unsolved when the {epochs} epochs ran out: " + ", ".join(
            name + (" (still improving)" if rising else " (best at its last epoch)" if last
                    else " (past its best validation epoch)") for name, last, rising in cut)
        caveat += (", so more (`longrange.train.max_epochs`) may move the limit"
                   if any(last for _, last, _ in cut) else "")
    return (f"solved (>= {SOLVED:.0%} test accuracy) within {epochs} epochs: " + "; ".join(parts)
            + f" (lengths {', '.join(map(str, sorted(next(iter(results.values())))))}){caveat}.")


MARKERS = ("o", "s", "^", "D", "v")


# what each problem asks, said only for the problems that ran
PROBLEM_WORDS = {"recall": "**recall** names the first of L symbols (8 kinds)",
                 "adding": "**adding** sums the two marked digits among L (one in the first "
                           "tenth, one in the second half)"}


def plot_longrange(results: dict[str, Any], cells: list[str], folder: Path, stem: str) -> None:
    """Accuracy in % against length, each cell with its 95% interval, the cells side by side
    at each length (nudged apart on the log axis) so that equal scores do not hide a cell;
    the lengths joined by dotted lines, as nothing between them was measured."""
    for problem, by_length in results.items():  # one image per problem, a phone column wide
        fig, ax = plt.subplots(figsize=(PANEL_INCHES, 3.2))
        lengths = sorted(by_length)
        for k, cell in enumerate(cells):
            nudge = 1.06 ** (k - (len(cells) - 1) / 2)
            means = np.array([100 * np.mean(by_length[n]["accuracy"][cell]) for n in lengths])
            bounds = np.array([[100 * b for b in by_length[n]["ci95"][cell]] for n in lengths])
            below, above = (np.clip(x, 0, None) for x in (means - bounds[:, 0],
                                                           bounds[:, 1] - means))
            # dotted joins: only the lengths marked were measured
            ax.errorbar([n * nudge for n in lengths], means, yerr=[below, above], capsize=3,
                        marker=MARKERS[k % len(MARKERS)], label=CELL_NAMES[cell],
                        color=CELL_COLORS[cell], alpha=0.9, ls=":", lw=1)
        ax.plot(lengths, [100 * by_length[n]["chance"] for n in lengths], "--", color="0.5",
                lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        ax.set_ylim(0, 102)
        ax.set_xlabel("dependency length (steps)")
        ax.set_ylabel("test accuracy (%), 95% interval")
        ax.set_title(problem)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, folder / panel_file(stem, problem))


def longrange_section(params: Params, root: Path, results: dict[str, Any], figures: Path,
                      plots: Path) -> tuple[list[str], dict[str, Any]]:
    """The synthetic sweep: a table and a plot of accuracy against length, and the gradient
    flow at the longest length of each problem."""
    cells, seeds = params.cells, params.seeds
    plot_longrange(results, cells, figures, "longrange_accuracy")
    lr = params.longrange
    epochs = params.for_longrange(lr.problems[0], lr.lengths[0]).train.max_epochs
    lines = [
        "## Long-range memory: synthetic tasks", "",
        f"Generated data, no download ({lr.examples:,} sequences per problem and length, "
        "80/10/10 split): " + "; ".join(PROBLEM_WORDS[p] for p in lr.problems) + ". The "
        "cells read left to right and answer at the last step (`longrange.model`), so the "
        "evidence is about L steps back. Accuracy is on the test split"
        + (f", mean of {len(seeds)} seeds, in brackets its 95% t-interval over the seeds"
           if len(seeds) > 1 else ", in brackets its 95% interval over the test examples "
           "(Wilson; one seed, so retraining is not covered)")
        + f"; each fit had at most {epochs} epochs.", "",
        f"Verdict: {longrange_verdict(results, cells, epochs)}", "",
        "| problem | length | chance | " + " | ".join(CELL_NAMES[c] for c in cells) + " |",
        "|---|---:|---:|" + "---:|" * len(cells),
    ]
    for problem, by_length in results.items():
        for n in sorted(by_length):
            row = by_length[n]
            lines.append(f"| {problem} | {n} | {row['chance']:.1%} | " + " | ".join(
                f"{np.mean(row['accuracy'][c]):.1%} [{row['ci95'][c][0]:.1%}, "
                f"{row['ci95'][c][1]:.1%}]" + (" ↗" if c in row["still_improving"] else
                                               " †" if c in row["out_of_epochs"] else "")
                for c in cells) + " |")
        write_series(plots / f"longrange_{problem}.csv", "length", sorted(by_length),
                     {c: [float(np.mean(by_length[n]["accuracy"][c])) for n in sorted(by_length)]
                      for c in cells})
    rows = [row for by_length in results.values() for row in by_length.values()]
    legend = []  # only the marks the table uses
    if any(row["out_of_epochs"] for row in rows):
        legend.append(f"†: ran all {epochs} epochs (neither early stopping nor `stop_at` ended "
                      "it).")
    if any(row["still_improving"] for row in rows):
        legend.append(f"↗: ran all {epochs} epochs and was still improving (better at each of "
                      f"its last {RISING_EPOCHS}).")
    lines += ["", *([" ".join(legend), ""] if legend else []),
              panels("accuracy against dependency length", "figures/longrange_accuracy",
                     list(results)), ""]
    summary: dict[str, Any] = {"results": results, "data": [],
                               "verdict": longrange_verdict(results, cells, epochs)}
    unlearned = [(problem, n, c) for problem, by_length in results.items()
                 for n in sorted(by_length) for c in cells
                 if did_not_learn(float(np.mean(by_length[n]["accuracy"][c])),
                                  by_length[n]["chance"])]
    lines += [f"- **Caveat:** {CELL_NAMES[c]} did not learn {problem} at length {n}: "
              f"{np.mean(results[problem][n]['accuracy'][c]):.1%}, no better than always "
              f"answering the most frequent label ({results[problem][n]['chance']:.1%}); its "
              "gradient flow and gates below describe a cell that learned nothing there."
              for problem, n, c in unlearned]
    lines += [""] if unlearned else []
    summary["did_not_learn"] = [{"problem": p, "length": n, "cell": c} for p, n, c in unlearned]
    for problem, by_length in results.items():
        name = task_name(problem, max(by_length))
        sub, diag = diagnostics_section(name, Layout(root, name), cells, seeds, figures, plots)
        lines += [f"### Gradient flow and gates: {problem}, length {max(by_length)}", "",
                  *[line for line in sub if not line.startswith("### ")]]
        summary[name] = diag
        for n in sorted(by_length):  # lineage for the provenance table
            prepared = Layout(root, task_name(problem, n)).prepared
            gen = stored(read_stats(prepared))["generator"]  # as the file holds it
            summary["data"].append((task_name(problem, n), f"generated: `{gen}`",
                                    tree_digest(prepared)))
    return lines, summary
