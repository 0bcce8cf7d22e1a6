"""The comparison report: per task a table with the verdict, per-label tables and PNG plots."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from pipeline import tracking
from pipeline.config import Params, TaskParams
from pipeline.errors import fail
from pipeline.files import atomic_dir, read_json, write_json
from pipeline.metrics import confusion_matrix
from pipeline.paths import Layout

plt.rcParams["text.parse_math"] = False  # labels such as Brown's `nn$` are text, not math

CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
MAX_CONFUSION_LABELS = 25  # larger tag sets: plot the most frequent gold labels


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def read_confusion(path: Path, labels: list[str]) -> list[list[int]]:
    index = {label: i for i, label in enumerate(labels)}
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return confusion_matrix([index[r["actual"]] for r in rows],
                            [index[r["predicted"]] for r in rows], len(labels))


def collect(params: TaskParams, layout: Layout) -> list[dict[str, Any]]:
    """Everything the report needs per cell of one task, from the files earlier stages wrote."""
    results = []
    for cell in params.cells:
        try:
            train = read_json(layout.model_dir(cell) / "train.json")
            test = read_json(layout.test_metrics(cell))
            history = read_history(layout.history(cell))
            cm = read_confusion(layout.predictions(cell), train["labels"])
            per_label = read_json(layout.per_label(cell))
        except (OSError, ValueError, KeyError) as err:
            fail(f"report: results for {params.name}/{cell} are missing or unreadable ({err}); "
                 f"run `dvc repro` (stages train@{params.name}-{cell}, evaluate@...)")
        results.append({"cell": cell, "train": train, "test": test, "history": history,
                        "confusion": cm, "per_label": per_label})
    return results


def headline(results: list[dict[str, Any]]) -> tuple[str, str]:
    """The metric the verdict ranks by, and its name: entity F1 for NER, else accuracy."""
    if all("entity_f1" in r["test"] for r in results):
        return "entity_f1", "entity F1"
    tagging = results[0]["train"]["family"] == "tagging"
    return "accuracy", "token accuracy" if tagging else "accuracy"


def verdict(results: list[dict[str, Any]]) -> str:
    metric, label = headline(results)
    ranked = sorted(results, key=lambda r: -r["test"][metric])
    best = ranked[0]
    name = CELL_NAMES[best["cell"]]
    if len(ranked) == 1:
        return f"Only {name} was trained: test {label} {best['test'][metric]:.1%}."
    gaps = ", ".join(
        f"{CELL_NAMES[r['cell']]} by {100 * (best['test'][metric] - r['test'][metric]):.1f} points"
        for r in ranked[1:])
    return (f"**{name} wins** on test {label} with {best['test'][metric]:.1%}, ahead of {gaps}. "
            "One seed per cell: differences of about a point are within seed noise.")


def per_label_table(results: list[dict[str, Any]]) -> list[str]:
    """F1 per label (or per entity type, for NER) with one column per cell."""
    def table(r: dict[str, Any]) -> dict[str, dict[str, float]]:
        return r["per_label"].get("entities", r["per_label"])

    first = table(results[0])
    kind = "entity type" if "entities" in results[0]["per_label"] else "label"
    lines = [f"| {kind} | support | " + " | ".join(f"{CELL_NAMES[r['cell']]} F1"
                                                  for r in results) + " |",
             "|---|---:|" + "---:|" * len(results)]
    for name in sorted(first, key=lambda k: -first[k]["support"]):
        cells = " | ".join(f"{table(r).get(name, {}).get('f1', 0):.3f}" for r in results)
        lines.append(f"| `{name}` | {first[name]['support']:,} | {cells} |")
    return lines


def plot_learning_curves(results: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(2, len(results), figsize=(4 * len(results), 6), squeeze=False,
                             sharey="row")
    for col, r in enumerate(results):
        epochs = [h["epoch"] for h in r["history"]]
        for row, metric in enumerate(("loss", "acc")):
            ax = axes[row][col]
            for split, style in (("train", "-"), ("val", "--")):
                values = [h.get(f"{split}_{metric}") for h in r["history"]]
                ax.plot(epochs, values, style, marker="o", label=split)
            best = r["train"]["best_epoch"]
            if best:
                ax.axvline(best, color="grey", lw=0.8, ls=":")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy")
            ax.set_title(f"{CELL_NAMES[r['cell']]}: {'accuracy' if metric == 'acc' else 'loss'}")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_task(params: TaskParams, results: list[dict[str, Any]], stats: dict[str, Any],
                source: dict[str, Any]) -> list[str]:
    """One task's section: table, curves, confusions, per-label F1, data and settings."""
    first = results[0]["train"]
    runs_in = sorted({r["train"]["parent_run_id"] for r in results})
    metric, _ = headline(results)
    tagging = first["family"] == "tagging"
    # (header, key in metrics, format) for the optional columns this task has
    extra = [(h, k, f) for h, k, f in (("entity F1", "entity_f1", ".2%"),
                                       ("OOV accuracy", "oov_accuracy", ".2%"))
             if all(r["test"].get(k) is not None for r in results)]
    fig = f"figures/{params.name}"
    lines = [
        f"## {params.name}: `{params.data.dataset}`"
        + (" (sequence labelling)" if tagging else " (classification)"),
        "",
        verdict(results),
        "",
        f"| cell | {'token accuracy' if tagging else 'test accuracy'} | "
        + "".join(f"{h} | " for h, _, _ in extra)
        + "macro-F1 | test loss | parameters | train time (s) | epochs (best) | "
        "inference (examples/s) | MLflow run |",
        "|---|---:|" + "---:|" * len(extra) + "---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(results, key=lambda r: -r["test"][metric]):
        t, tr = r["test"], r["train"]
        lines.append(
            f"| {CELL_NAMES[r['cell']]} | {t['accuracy']:.2%} | "
            + "".join(f"{t[k]:{f}} | " for _, k, f in extra)
            + f"{t['macro_f1']:.4f} | {t['loss']:.4f} | {t['num_parameters']:,} | "
            f"{t['train_seconds']:.1f} | {t['epochs']} ({tr['best_epoch']}) | "
            f"{t['inference_examples_per_s']:,.0f} | `{tr['run_id']}` |")
    sp = stats["splits"]
    limited = (f"a seeded sample of {params.data.max_examples:,} examples "
               f"(`task.{params.name}.data.max_examples`; `null` = all)"
               if params.data.max_examples else "all examples")
    lines += [
        "",
        "### Learning curves",
        "",
        f"![learning curves]({fig}_learning_curves.png)",
        "",
        "Dotted line: the epoch whose weights were kept (best validation accuracy).",
        "",
        "### Confusion matrices (test split" + (", tokens)" if tagging else ")"),
        "",
        f"![confusion matrices]({fig}_confusion_matrices.png)",
        "",
        *([f"Only the {MAX_CONFUSION_LABELS} most frequent gold labels are drawn "
           f"(of {len(first['labels'])}); `dvc plots show` has them all.", ""]
          if len(first["labels"]) > MAX_CONFUSION_LABELS else []),
        "### Per " + ("entity type" if "entities" in results[0]["per_label"] else "label")
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
        "",
        "### Settings",
        "",
        f"- Model: `{params.model.model_dump()}`",
        f"- Training: `{params.train.model_dump()}`",
        f"- Per-cell overrides: `{params.overrides or {}}`",
        f"- Device: {first['accelerator']} ({first['precision']}); data hash "
        f"`{first['data_hash'][:16]}…`.",
        f"- MLflow experiment `{params.experiment}`, comparison run(s) "
        f"{', '.join(f'`{p}`' for p in runs_in)} in `{first['tracking_uri']}`.",
        "",
    ]
    return lines


def render_markdown(params: Params, sections: dict[str, list[str]],
                    verdicts: dict[str, str]) -> str:
    lines = ["# RNN vs LSTM vs GRU", "",
             f"{len(params.cells)} cells compared on {len(params.tasks)} task(s); "
             "one seed per cell and task.", ""]
    lines += [f"- **{name}**: {verdicts[name]}" for name in params.tasks]
    lines.append("")
    for name in params.tasks:
        lines += sections[name]
    return "\n".join(lines)


def write_report(params: Params, root: Path) -> Path:
    """reports/comparison.md, figures/ and summary.json over every task; logged to MLflow."""
    reports = Layout(root, "").reports
    sections, verdicts, summary, parents = {}, {}, {}, []
    with atomic_dir(reports) as out:
        (out / "figures").mkdir()
        for name in params.tasks:
            tp, layout = params.for_task(name), Layout(root, name)
            results = collect(tp, layout)
            stats = read_json(layout.prepared / "stats.json")
            source = read_json(layout.raw / "source.json")
            plot_learning_curves(results, out / "figures" / f"{name}_learning_curves.png")
            plot_confusions(results, out / "figures" / f"{name}_confusion_matrices.png")
            sections[name] = render_task(tp, results, stats, source)
            verdicts[name] = verdict(results)
            metric = headline(results)[0]
            summary[name] = {
                "dataset": tp.data.dataset, "family": stats["family"], "ranked_by": metric,
                "winner": max(results, key=lambda r: r["test"][metric])["cell"],
                "cells": {r["cell"]: {**r["test"], "run_id": r["train"]["run_id"]}
                          for r in results},
            }
            parents += sorted({r["train"]["parent_run_id"] for r in results})
        (out / "comparison.md").write_text(render_markdown(params, sections, verdicts),
                                           encoding="utf-8")
        write_json(out / "summary.json", {"tasks": summary})

    client = tracking.client_for(params, root)
    for parent in parents:  # each task's comparison run carries the whole report
        tracking.ensure_run(client, parent)
        client.log_artifacts(parent, str(reports), "report")
    print(f"report: {reports / 'comparison.md'}", file=sys.stderr)
    return reports / "comparison.md"
