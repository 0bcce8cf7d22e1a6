"""One task's section of the report and its summary.json entry."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import yaml

from pipeline.config import Family, TaskParams
from pipeline.config.records import stored
from pipeline.data.records import DataStats
from pipeline.report.comparison import (
    ByLength,
    Tests,
    grouping,
    length_table,
    per_label_table,
    ranked,
    significance_table,
    winner,
)
from pipeline.report.figures import CELL_NAMES, MAX_CONFUSION_LABELS, panels
from pipeline.report.results import CellResult, TaskResult


def sample_of(params: TaskParams) -> dict[str, int] | None:
    """The sample the task's data is, if params.yaml takes one (`max_examples` or
    `max_words`): the README's results table names it."""
    data = params.data
    taken = {"max_examples": data.max_examples, "max_words": data.max_words}
    return {k: v for k, v in taken.items() if v is not None} or None


def as_yaml(values: dict[str, Any]) -> str:
    """Settings as params.yaml writes them (`null`, `true`), on one line."""
    return yaml.safe_dump(values, default_flow_style=True, sort_keys=False, width=10**6).strip()


@dataclass(frozen=True)
class Findings:
    """What the report made of a task's results: accuracy by length, the pairwise tests, the
    verdict, the caveats, and the diagnostics' and tuning's subsections (lines)."""

    lengths: ByLength
    tests: Tests
    verdict: str
    caveats: list[str]
    diagnostics: list[str]
    tuning: list[str]


def curves_caption(seeds: int, monitor: str) -> str:
    """What the learning curves' band or dotted line marks."""
    if seeds > 1:
        return "Bands: the range over seeds."
    kept = {"val_entity_f1": "entity F1", "val_ppl": "perplexity"}.get(monitor, "accuracy")
    return f"Dotted line: the epoch whose weights were kept (best validation {kept})."


def confusion_section(results: list[CellResult], fig: str, tagging: bool) -> list[str]:
    """The confusion matrices' heading, figure and how to read them."""
    first = results[0].confusion
    entities = first.spurious is not None
    unit = ", entities" if entities else ", tokens" if tagging else ""
    lines = [f"### Confusion matrices (test split{unit})", "",
             panels("confusion matrices", f"{fig}_confusion_matrices",
                    [r.cell for r in results]), ""]
    if entities:
        lines += ["Each gold entity is counted once, under the type of the predicted entity with "
                  "exactly its span, or under `missed` (none, or another span); rows add up to "
                  "100%. Predicted entities at no gold entity's span (spurious): "
                  + ", ".join(f"{CELL_NAMES[r.cell]} {r.confusion.spurious:,}"
                              for r in results) + ".", ""]
    else:
        lines += ["Each row is one actual label, its examples split by prediction (% of the row; "
                  "the diagonal is that label's recall).", ""]
    if len(first.rows) > MAX_CONFUSION_LABELS:
        lines += [f"Only the {MAX_CONFUSION_LABELS} most frequent actual labels are drawn "
                  f"(of {len(first.rows)}); the per-label table below has them all.", ""]
    return lines


def render_task(task: TaskResult, found: Findings) -> list[str]:
    """One task's section: table, significance, what tuning found (with tuning on), accuracy
    by length, gradient flow and gates, curves, confusions, per-label F1, data and settings."""
    params, results, stats, source = task.params, task.cells, task.stats, task.source
    first, metric, label, tuning = task.first, task.metric, task.label, found.tuning
    tagging = first.family == Family.TAGGING
    seeds = len(params.seeds)
    # (header, key in metrics, format) for the optional columns this task has
    extra = [(h, k, f) for h, k, f in (("entity F1", "entity_f1", ".2%"),
                                       ("OOV accuracy", "oov_accuracy", ".2%"))
             if all(getattr(r.test, k) is not None for r in results)]
    fig = f"figures/{params.name}"
    lines = [
        f"## {params.name}: `{params.data.dataset}`"
        + (" (sequence labelling)" if tagging else " (classification)"),
        "",
        found.verdict,
        "",
        *[f"- **Caveat:** {caveat}." for caveat in found.caveats],
        *([""] if found.caveats else []),
        f"| cell | {'token accuracy' if tagging else 'test accuracy'} | "
        + "".join(f"{h} | " for h, _, _ in extra)
        + (f"{label}: mean ± sd [95% CI] | " if seeds > 1 else f"{label}: 95% CI (test sample) | ")
        + "macro-F1 | test loss | parameters (hidden units) | train time (s) | epochs | "
        "inference (examples/s) | MLflow run |",
        "|---|---:|" + "---:|" * len(extra) + "---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:  # every table lists the cells in params.yaml's order
        t, sc = r.test, r.score
        spread = f"[{sc.low:.2%}, {sc.high:.2%}] | "
        if seeds > 1:
            spread = f"{sc.mean:.2%} ± {100 * sc.std:.2f} {spread}"
        run = (f"`{r.train.run_id}`" if seeds == 1
               else f"{seeds} runs (tag `rnnbench.cell = {r.cell}`)")
        lines.append(
            f"| {CELL_NAMES[r.cell]} | {t.accuracy:.2%} | "
            + "".join(f"{getattr(t, k):{f}} | " for _, k, f in extra) + spread
            + f"{t.macro_f1:.4f} | {t.loss:.4f} | {t.num_parameters:,.0f} "
            f"({r.train.params.model.hidden_size}) | "
            f"{t.train_seconds:.1f} | {t.epochs:.3g} | "
            f"{t.inference_examples_per_s:,.0f} | {run} |")
    lines += ["", f"Seeds: {', '.join(map(str, params.seeds))}"
              + (" (table: means over seeds)." if seeds > 1 else
                 f" (one per cell; the interval is a bootstrap over {results[0].unit} of "
                 f"{label}: how far another test sample could move it; `-S "
                 "'seeds=[1,2,3,4,5]'` gives intervals and tests over seeds and the test "
                 "sample together)."),
              "", "### Significance", "", *significance_table(results, found.tests), "",
              *tuning]
    sp = stats.splits
    test = sp["test"]
    limited = (f"a seeded sample of {params.data.max_examples:,} examples "
               f"(`task.{params.name}.data.max_examples`; `null` = all)"
               if params.data.max_examples else "all examples")
    lines += [
        f"### {label[0].upper() + label[1:]} by length",
        "",
        *length_table(found.lengths, results),
        "",
        f"![{label} by length]({fig}_by_length.png)",
        "",
        *found.diagnostics,
        "### Learning curves",
        "",
        panels("learning curves", f"{fig}_learning_curves", [r.cell for r in results]),
        "",
        curves_caption(seeds, first.monitor),
        "",
        *confusion_section(results, fig, tagging),
        "### Per " + ("entity type" if metric == "entity_f1" else "label")
        + " (test split)",
        "",
        *per_label_table(results),
        "",
        "### Data",
        "",
        f"- Source: `{source.source}` (sha256 `{source.sha256[:16]}…`), {source.licence}.",
        f"- {stats.examples:,} examples, {limited}; split: "
        f"{source.splits}; no group spans two splits: "
        + ", ".join(f"{s} {sp[s].examples:,} ({sp[s].groups:,} groups, "
                    f"{sp[s].tokens:,} tokens)" for s in sp) + ".",
        *duplicates_line(stats),
        f"- Vocabulary {stats.vocab_size:,} (train split only); test OOV rate "
        f"{test.oov_rate:.1%}; test length p50/p90/max "
        f"{test.length.p50}/{test.length.p90}/{test.length.max} tokens.",
        *[f"- **Warning:** {warning}." for warning in stats.warnings],
        "",
        "### Settings",
        "",
        f"- Model: `{as_yaml(params.model.model_dump())}`",
        f"- Training: `{as_yaml(params.train.model_dump())}`",
        f"- Per-cell overrides: `{as_yaml(params.overrides or {})}`"
        + ("; each cell's tuned settings replace these (Tuning, above)." if tuning else ""),
        f"- Device: {first.accelerator} ({first.precision}); data hash "
        f"`{first.data_hash[:16]}…`.",
        f"- MLflow experiment `{params.experiment}`, comparison run(s) "
        f"{', '.join(f'`{p}`' for p in task.parent_runs)}.",
        "",
    ]
    return lines


def duplicates_line(stats: DataStats) -> list[str]:
    """How many texts repeat and where their copies went, so that no test text is also
    trained on (none for generated data)."""
    if (d := stats.duplicates) is None:
        return []
    dropped = f", {d.dropped:,} dropped from training as copies of test texts" if d.dropped else ""
    return [f"- Repeated texts: {d.exact + d.normalised:,} ({d.exact:,} exact copies, "
            f"{d.normalised:,} more equal once case, spacing, URLs and @mentions are ignored); "
            f"every copy of a text is in one split ({d.moved:,} moved to their first copy's "
            f"split{dropped}), so no test text is trained on."]


def task_summary(task: TaskResult, found: Findings) -> dict[str, Any]:
    """summary.json's entry for one task: means, intervals, per-seed metrics, tests, caveats
    and accuracy by length."""
    results, metric, tests = task.cells, task.metric, found.tests
    order = ranked(results)
    g = grouping(results, tests)
    return {
        "dataset": task.params.data.dataset, "sample": sample_of(task.params),
        "family": task.stats.family, "ranked_by": metric,
        "seeds": task.params.seeds, "best": order[0].cell,
        "winner": winner(results, tests),  # None unless it beats every other significantly
        # a strict order of tiers where the tests give one (else null), and the letter display
        "tiers": [[r.cell for r in tier] for tier in g.tiers] if g.tiers is not None else None,
        "groups": g.letters,
        "cells": {r.cell: {**stored(r.test), metric: r.score.mean,
                           # null for one seed: a spread of one number is not 0
                           f"{metric}_std": r.score.std if len(r.runs) > 1 else None,
                           f"{metric}_ci95": [r.score.low, r.score.high],
                           f"{metric}_ci95_over": (f"seeds and {r.unit}"
                                                   if len(r.runs) > 1 else r.unit),
                           "seeds": {str(run.seed): {**stored(run.test),
                                                     "run_id": run.train.run_id}
                                     for run in r.runs}}
                  for r in results},
        "comparisons": [{"a": a.cell, "b": b.cell, **vars(tests[a.cell, b.cell])}
                        for i, a in enumerate(order) for b in order[i + 1:]],
        "caveats": found.caveats, "by_length": asdict(found.lengths),
    }
