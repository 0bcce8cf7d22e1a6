"""The comparison report: per task a table with the verdict, per-label tables and PNG plots."""

from __future__ import annotations

import base64
import csv
import hashlib
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.ticker import MaxNLocator

from pipeline import tracking
from pipeline.config import PARAMS_FILE, Params, TaskParams
from pipeline.data import EncodedSplit
from pipeline.errors import fail
from pipeline.figures import CELL_COLORS, CELL_NAMES, plt, save
from pipeline.files import atomic_dir, read_json, write_json
from pipeline.longrange_report import (
    collect_longrange,
    diagnostics_section,
    longrange_section,
    write_series,
)
from pipeline.metrics import bio_spans, confusion_matrix, is_bio
from pipeline.paths import Layout, reports_dir
from pipeline.stats import (
    Comparison,
    bootstrap_interval,
    p_value,
    paired_bootstrap,
    paired_t,
    plain_words,
    ratio,
    summarize,
)

MAX_CONFUSION_LABELS = 25  # larger tag sets: plot the most frequent gold labels


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def read_predictions(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def confusion(rows: list[dict[str, str]], labels: list[str]) -> list[list[int]]:
    index = {label: i for i, label in enumerate(labels)}
    return confusion_matrix([index[r["actual"]] for r in rows],
                            [index[r["predicted"]] for r in rows], len(labels))


def per_example(rows: list[dict[str, str]], metric: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The headline metric of each test example as a fraction num/den, so that the metric over
    any resample of examples is sum(num) / sum(den): hits over tokens (accuracy), or 2tp over
    2tp + fp + fn (entity F1)."""
    num, den = np.zeros(n), np.zeros(n)
    by_example: dict[int, tuple[list[str], list[str]]] = {}
    for r in rows:
        gold, pred = by_example.setdefault(int(r["example"]), ([], []))
        gold.append(r["actual"])
        pred.append(r["predicted"])
    for i, (gold, pred) in by_example.items():
        if metric == "entity_f1":
            g, p = bio_spans(gold), bio_spans(pred)
            tp = len(g & p)
            num[i], den[i] = 2 * tp, 2 * tp + len(p - g) + len(g - p)
        else:
            num[i], den[i] = sum(a == b for a, b in zip(gold, pred, strict=True)), len(gold)
    return num, den


def headline(family: str, labels: list[str]) -> tuple[str, str]:
    """The metric the verdict ranks by, and its name: entity F1 for NER, else accuracy."""
    if family == "tagging" and is_bio(labels):
        return "entity_f1", "entity F1"
    return "accuracy", "token accuracy" if family == "tagging" else "accuracy"


def mean_metrics(tests: list[dict[str, Any]]) -> dict[str, Any]:
    """Test metrics averaged over seeds (None where a seed has none)."""
    out: dict[str, Any] = {}
    for key, value in tests[0].items():
        values = [t.get(key) for t in tests]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        out[key] = sum(values) / len(values) if numeric else value
    return out


def collect(params: TaskParams, layout: Layout) -> list[dict[str, Any]]:
    """Everything the report needs per cell of one task, over its seeds, from the files the
    earlier stages wrote."""
    results = []
    for cell in params.cells:
        runs = []
        for seed in params.seeds:
            try:
                train = read_json(layout.model_dir(cell, seed) / "train.json")
                rows = read_predictions(layout.predictions(cell, seed))
                runs.append({"seed": seed, "train": train,
                             "test": read_json(layout.test_metrics(cell, seed)),
                             "history": read_history(layout.history(cell, seed)),
                             "rows": rows, "per_label": read_json(layout.per_label(cell, seed))})
            except (OSError, ValueError, KeyError) as err:
                fail(f"report: results for {params.name}/{cell}/seed{seed} are missing or "
                     f"unreadable ({err}); run `dvc repro`")
        train = runs[0]["train"]
        metric, _ = headline(train["family"], train["labels"])
        n = runs[0]["test"]["test_examples"]
        examples = [per_example(r["rows"], metric, n) for r in runs]
        score = summarize([r["test"][metric] for r in runs])
        if score.low is None:  # one seed: the interval a different test sample allows
            low, high = bootstrap_interval(*examples[0])
            score = replace(score, low=low, high=high)
        results.append({
            "cell": cell, "runs": runs, "train": train,
            "test": mean_metrics([r["test"] for r in runs]),
            "score": score,
            "confusion": np.sum([confusion(r["rows"], train["labels"]) for r in runs],
                                axis=0).tolist(),
            # summed over seeds: the bootstrap then compares the seed-averaged metric
            "num": np.sum([e[0] for e in examples], axis=0),
            "den": np.sum([e[1] for e in examples], axis=0),
        })
    return results


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


def plot_by_length(lengths: dict[str, Any], label: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ticks = [b["tokens"] for b in lengths["buckets"]]
    for cell, values in lengths["cells"].items():
        ax.plot(range(len(values)), values, marker="o", label=CELL_NAMES[cell],
                color=CELL_COLORS[cell])
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set_xlabel("test example length (tokens), quartiles")
    ax.set_ylabel(f"test {label}")
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, path)


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


def plot_learning_curves(results: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch: the mean over seeds, and their range as a band."""
    fig, axes = plt.subplots(2, len(results), figsize=(4 * len(results), 6), squeeze=False,
                             sharey="row")
    for col, r in enumerate(results):
        for row, metric in enumerate(("loss", "acc")):
            ax = axes[row][col]
            for split, style in (("train", "-"), ("val", "--")):
                key = f"{split}_{metric}"
                by_epoch: dict[int, list[float]] = {}
                for run in r["runs"]:
                    for h in run["history"]:
                        if key in h:
                            by_epoch.setdefault(int(h["epoch"]), []).append(h[key])
                epochs = sorted(by_epoch)
                ax.plot(epochs, [np.mean(by_epoch[e]) for e in epochs], style, marker="o",
                        label=split)
                if len(r["runs"]) > 1:
                    ax.fill_between(epochs, [min(by_epoch[e]) for e in epochs],
                                    [max(by_epoch[e]) for e in epochs], alpha=0.2)
            if len(r["runs"]) == 1 and r["train"]["best_epoch"]:
                ax.axvline(r["train"]["best_epoch"], color="grey", lw=0.8, ls=":")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy")
            ax.set_title(f"{CELL_NAMES[r['cell']]}: {'accuracy' if metric == 'acc' else 'loss'}")
            ax.grid(alpha=0.3)
            ax.legend()
    save(fig, path)


def plot_confusions(results: list[dict[str, Any]], path: Path) -> None:
    n_labels = min(len(results[0]["train"]["labels"]), MAX_CONFUSION_LABELS)
    side = 3.4 if n_labels <= 6 else 6.0
    fig, axes = plt.subplots(1, len(results), figsize=((side + 0.2) * len(results), side),
                             squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        cm, labels = r["confusion"], r["train"]["labels"]
        keep = sorted(range(len(labels)), key=lambda i: -sum(cm[i]))[:MAX_CONFUSION_LABELS]
        keep.sort()
        cm = [[cm[i][j] for j in keep] for i in keep]
        labels = [labels[i] for i in keep]
        ax.imshow(cm, cmap="Blues")
        size = 9 if len(labels) <= 6 else max(3, 9 - len(labels) // 4)
        for i, row in enumerate(cm):
            for j, n in enumerate(row):
                ax.text(j, i, str(n), ha="center", va="center", fontsize=size,
                        color="white" if n > max(map(max, cm)) / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title(f"{CELL_NAMES[r['cell']]} ({r['test']['accuracy']:.1%})")
    save(fig, path)


def as_yaml(values: dict[str, Any]) -> str:
    """Settings as params.yaml writes them (`null`, `true`), on one line."""
    return yaml.safe_dump(values, default_flow_style=True, sort_keys=False, width=10**6).strip()


def render_task(params: TaskParams, results: list[dict[str, Any]], stats: dict[str, Any],
                source: dict[str, Any], lengths: dict[str, Any], tests: Tests,
                summary_line: str, diagnostics: list[str]) -> list[str]:
    """One task's section: table, significance, accuracy by length, gradient flow and gates
    (`diagnostics`), curves, confusions, per-label F1, data and settings."""
    first = results[0]["train"]
    runs_in = sorted({run["train"]["parent_run_id"] for r in results for run in r["runs"]})
    metric, label = headline(first["family"], first["labels"])
    tagging = first["family"] == "tagging"
    seeds = len(params.seeds)
    # (header, key in metrics, format) for the optional columns this task has
    extra = [(h, k, f) for h, k, f in (("entity F1", "entity_f1", ".2%"),
                                       ("OOV accuracy", "oov_accuracy", ".2%"))
             if all(r["test"].get(k) is not None for r in results)]
    fig = f"figures/{params.name}"
    lines = [
        f"## {params.name}: `{params.data.dataset}`"
        + (" (sequence labelling)" if tagging else " (classification)"),
        "",
        summary_line,
        "",
        f"| cell | {'token accuracy' if tagging else 'test accuracy'} | "
        + "".join(f"{h} | " for h, _, _ in extra)
        + (f"{label}: mean ± sd [95% CI] | " if seeds > 1 else f"{label}: 95% CI (test sample) | ")
        + "macro-F1 | test loss | parameters (hidden units) | train time (s) | epochs | "
        "inference (examples/s) | MLflow run |",
        "|---|---:|" + "---:|" * len(extra) + "---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in ranked(results):
        t, sc = r["test"], r["score"]
        spread = f"[{sc.low:.2%}, {sc.high:.2%}] | "
        if seeds > 1:
            spread = f"{sc.mean:.2%} ± {100 * sc.std:.2f} {spread}"
        run = (f"`{r['train']['run_id']}`" if seeds == 1
               else f"{seeds} runs (tag `rnnbench.cell = {r['cell']}`)")
        lines.append(
            f"| {CELL_NAMES[r['cell']]} | {t['accuracy']:.2%} | "
            + "".join(f"{t[k]:{f}} | " for _, k, f in extra) + spread
            + f"{t['macro_f1']:.4f} | {t['loss']:.4f} | {t['num_parameters']:,.0f} "
            f"({r['train']['params']['model']['hidden_size']}) | "
            f"{t['train_seconds']:.1f} | {t['epochs']:.3g} | "
            f"{t['inference_examples_per_s']:,.0f} | {run} |")
    lines += ["", f"Seeds: {', '.join(map(str, params.seeds))}"
              + (" (table: means over seeds)." if seeds > 1 else
                 f" (one per cell; the interval is a bootstrap over test examples of {label}: "
                 "how far another test sample could move it; `-S 'seeds=[1,2,3,4,5]'` gives "
                 "intervals and t-tests over seeds)."),
              "", "### Significance", "", *significance_table(results, tests)]
    sp = stats["splits"]
    limited = (f"a seeded sample of {params.data.max_examples:,} examples "
               f"(`task.{params.name}.data.max_examples`; `null` = all)"
               if params.data.max_examples else "all examples")
    lines += [
        "",
        f"### {label[0].upper() + label[1:]} by length",
        "",
        *length_table(lengths, results),
        "",
        f"![{label} by length]({fig}_by_length.png)",
        "",
        *diagnostics,
        "### Learning curves",
        "",
        f"![learning curves]({fig}_learning_curves.png)",
        "",
        ("Bands: the range over seeds." if seeds > 1 else
         "Dotted line: the epoch whose weights were kept (best validation "
         + ("entity F1)." if first.get("monitor") == "val_entity_f1" else "accuracy).")),
        "",
        "### Confusion matrices (test split" + (", tokens)" if tagging else ")"),
        "",
        f"![confusion matrices]({fig}_confusion_matrices.png)",
        "",
        *([f"Only the {MAX_CONFUSION_LABELS} most frequent gold labels are drawn "
           f"(of {len(first['labels'])}); `dvc plots show` has them all.", ""]
          if len(first["labels"]) > MAX_CONFUSION_LABELS else []),
        "### Per " + ("entity type" if metric == "entity_f1" else "label")
        + " (test split)",
        "",
        *per_label_table(results),
        "",
        "### Data",
        "",
        f"- Source: `{source['source']}` (sha256 `{source['sha256'][:16]}…`), {source['licence']}.",
        f"- {stats['examples']:,} examples, {limited}; split: "
        f"{source.get('splits', 'by group')} (no group spans two splits): "
        + ", ".join(f"{s} {sp[s]['examples']:,} ({sp[s]['groups']:,} groups, "
                    f"{sp[s]['tokens']:,} tokens)" for s in sp) + ".",
        f"- Vocabulary {stats['vocab_size']:,} (train split only); test OOV rate "
        f"{sp['test']['oov_rate']:.1%}; test length p50/p90/max "
        f"{sp['test']['length']['p50']}/{sp['test']['length']['p90']}/"
        f"{sp['test']['length']['max']} tokens.",
        *[f"- **Warning:** {warning}." for warning in stats.get("warnings", [])],
        "",
        "### Settings",
        "",
        f"- Model: `{as_yaml(params.model.model_dump())}`",
        f"- Training: `{as_yaml(params.train.model_dump())}`",
        f"- Per-cell overrides: `{as_yaml(params.overrides or {})}`",
        f"- Device: {first['accelerator']} ({first['precision']}); data hash "
        f"`{first['data_hash'][:16]}…`.",
        f"- MLflow experiment `{params.experiment}`, comparison run(s) "
        f"{', '.join(f'`{p}`' for p in runs_in)}.",
        "",
    ]
    return lines


def task_summary(params: TaskParams, stats: dict[str, Any], results: list[dict[str, Any]],
                 metric: str, tests: Tests) -> dict[str, Any]:
    """summary.json's entry for one task: means, intervals, per-seed metrics and tests."""
    order = ranked(results)
    return {
        "dataset": params.data.dataset, "family": stats["family"], "ranked_by": metric,
        "seeds": params.seeds, "winner": order[0]["cell"],
        "cells": {r["cell"]: {**r["test"], metric: r["score"].mean,
                              f"{metric}_std": r["score"].std,
                              f"{metric}_ci95": [r["score"].low, r["score"].high],
                              f"{metric}_ci95_over": ("seeds" if len(r["runs"]) > 1
                                                      else "test examples"),
                              "seeds": {str(run["seed"]): {**run["test"],
                                                           "run_id": run["train"]["run_id"]}
                                        for run in r["runs"]}}
                  for r in results},
        "comparisons": [{"a": a["cell"], "b": b["cell"], **vars(tests[a["cell"], b["cell"]])}
                        for i, a in enumerate(order) for b in order[i + 1:]],
    }


def provenance(params: Params, root: Path, data: list[tuple[str, str, str]]) -> list[str]:
    """What produced the report: the commit, every task's data hashes, and params.yaml."""
    git = tracking.git_info(root)
    try:
        text = (root / PARAMS_FILE).read_text(encoding="utf-8")
    except OSError as err:
        fail(f"report: {root / PARAMS_FILE}: unreadable ({err})")
    dirty = (" with uncommitted changes (e.g. `dvc exp run -S ...`)"
             if git["dirty"] == "true" else "")
    digest = hashlib.sha256(text.encode()).hexdigest()
    store = tracking.shown_uri(tracking.tracking_uri(params, root), root)
    lines = ["## Provenance", "",
             f"- Code: git commit `{git['commit']}`{dirty}.",
             f"- Params: `{PARAMS_FILE}` as below (sha256 `{digest}`).",
             f"- Runs: MLflow store `{store}` (`rnnbench ui` opens it).",
             "- Data (the prepared tensors' hash is what each MLflow run records as `data_hash`):",
             "", "| task | source (sha256) | prepared data (hash) |", "|---|---|---|"]
    lines += [f"| {name} | {src} | `{prepared}` |" for name, src, prepared in data]
    return [*lines, "", "```yaml", text.rstrip(), "```", ""]


def render_markdown(params: Params, sections: dict[str, list[str]], verdicts: dict[str, str],
                    longrange: tuple[list[str], str] | None, tail: list[str]) -> str:
    """Verdicts first, then a section per task, the long-range sweep and the provenance."""
    lines = ["# RNN vs LSTM vs GRU", "",
             f"{len(params.cells)} cells compared on {len(params.tasks)} task(s), "
             f"{len(params.seeds)} seed(s) each.", ""]
    lines += [f"- **{name}**: {verdicts[name]}" for name in params.tasks]
    if longrange is not None:
        lines.append(f"- **long range** (synthetic): {longrange[1]}")
    lines.append("")
    for name in params.tasks:
        lines += sections[name]
    if longrange is not None:
        lines += longrange[0]
    return "\n".join([*lines, *tail])


HTML_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #1d1d1f; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d0d0d7; padding: 3px 8px; }
td { white-space: nowrap; }  /* an interval or a run id reads on one line; wide tables scroll */
th { background: #f2f2f5; }
td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
code { background: #f2f2f5; padding: 0 3px; border-radius: 3px; font-size: 12px; }
h2 { border-bottom: 1px solid #d0d0d7; margin-top: 2em; }
"""


def render_html(markdown: str, folder: Path) -> str:
    """The Markdown report as one HTML file that opens offline: figures embedded as data URIs,
    no scripts, no external styles."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)

    def embed(match: re.Match[str]) -> str:
        data = base64.b64encode((folder / match.group(1)).read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="(figures/[^"]+\.png)"', embed, body)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>rnnbench: RNN vs LSTM vs GRU</title><style>{HTML_STYLE}</style></head>"
            f"<body>\n{body}</body></html>\n")


def write_report(params: Params, root: Path) -> Path:
    """reports/comparison.md (and .html, self-contained), figures/, plots/ (the figures' data
    for `dvc plots show`) and summary.json over every task and the long-range sweep; logged to
    MLflow with each task's comparison run."""
    reports = reports_dir(root)
    sections, verdicts, summary, parents, data = {}, {}, {}, [], []
    with atomic_dir(reports) as out:
        figures, plots = out / "figures", out / "plots"
        figures.mkdir()
        plots.mkdir()
        for name in params.tasks:
            tp, layout = params.for_task(name), Layout(root, name)
            results = collect(tp, layout)
            stats = read_json(layout.prepared / "stats.json")
            source = read_json(layout.raw / "source.json")
            plot_learning_curves(results, figures / f"{name}_learning_curves.png")
            plot_confusions(results, figures / f"{name}_confusion_matrices.png")
            metric, label = headline(stats["family"], stats["labels"])
            lengths = by_length(results, EncodedSplit(layout.split("test")).lengths.numpy())
            plot_by_length(lengths, label, figures / f"{name}_by_length.png")
            write_series(plots / f"{name}_by_length.csv", "tokens",
                         [b["tokens"] for b in lengths["buckets"]], lengths["cells"])
            diagnostics, diag_summary = diagnostics_section(name, layout, tp.cells, tp.seeds,
                                                            figures, plots)
            tests = pairwise(results, metric)
            verdicts[name] = verdict(results, label, tests)
            sections[name] = render_task(tp, results, stats, source, lengths, tests,
                                         verdicts[name], diagnostics)
            summary[name] = {**task_summary(tp, stats, results, metric, tests),
                             "by_length": lengths, **diag_summary}
            parents += sorted({run["train"]["parent_run_id"]
                               for r in results for run in r["runs"]})
            data.append((name, f"`{source['source']}` (`{source['sha256']}`)",
                         results[0]["train"]["data_hash"]))
        sweep = collect_longrange(params, root)
        longrange, long_summary = None, {}
        if sweep is not None:
            lines, long_summary = longrange_section(params, root, sweep, figures, plots)
            longrange = (lines, long_summary["verdict"])
            data += long_summary.pop("data")
        markdown = render_markdown(params, sections, verdicts, longrange,
                                   provenance(params, root, data))
        (out / "comparison.md").write_text(markdown, encoding="utf-8")
        (out / "comparison.html").write_text(render_html(markdown, out), encoding="utf-8")
        write_json(out / "summary.json", {"tasks": summary,
                                          "longrange": long_summary if sweep else None})

    client = tracking.client_for(params, root)
    for parent in parents:  # each task's comparison run carries the whole report
        tracking.ensure_run(client, parent)
        client.log_artifacts(parent, str(reports), "report")
    print(f"report: {reports / 'comparison.md'}", file=sys.stderr)
    return reports / "comparison.md"
