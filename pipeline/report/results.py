"""What the report reads: each cell's runs, metrics, histories and predictions."""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.errors import RnnbenchError, fail
from pipeline.files import read_json
from pipeline.model.record import read_record
from pipeline.paths import Layout
from pipeline.scoring.examples import by_example, headline, per_example
from pipeline.scoring.metrics import bio_spans, confusion_matrix, is_bio
from pipeline.scoring.stats import bootstrap_interval, summarize


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def read_predictions(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class Confusion:
    """What a confusion matrix shows: counts[actual][predicted] over `rows` x `columns`. For
    labels (and tags) the two are the same; for BIO entities each gold entity is counted once,
    under the type of the predicted entity with exactly its span or under `missed`, and
    predicted entities with no gold entity at their span are counted apart (`spurious`)."""

    rows: list[str]
    columns: list[str]
    counts: list[list[int]]
    spurious: int | None = None  # entities only


MISSED = "missed"


def label_confusion(rows: list[dict[str, str]], labels: list[str]) -> Confusion:
    index = {label: i for i, label in enumerate(labels)}
    counts = confusion_matrix([index[r["actual"]] for r in rows],
                              [index[r["predicted"]] for r in rows], len(labels))
    return Confusion(labels, labels, counts)


def entity_confusion(rows: list[dict[str, str]], labels: list[str]) -> Confusion:
    types = sorted({label.partition("-")[2] for label in labels if label != "O"})
    columns = [*types, MISSED]
    counts = [[0] * len(columns) for _ in types]
    spurious = 0
    for gold, pred in by_example(rows).values():
        predicted = {(start, end): kind for kind, start, end in bio_spans(pred)}
        real = bio_spans(gold)
        for kind, start, end in real:
            counts[types.index(kind)][columns.index(predicted.get((start, end), MISSED))] += 1
        spurious += len(predicted.keys() - {(start, end) for _, start, end in real})
    return Confusion(types, columns, counts, spurious)


def confusion(rows: list[dict[str, str]], labels: list[str]) -> Confusion:
    """Entity-level for BIO tag sets (a 21x21 tag grid says little), else per label."""
    return entity_confusion(rows, labels) if is_bio(labels) else label_confusion(rows, labels)


def mean_metrics(tests: list[dict[str, Any]]) -> dict[str, Any]:
    """Test metrics averaged over seeds (None where a seed has none)."""
    out: dict[str, Any] = {}
    for key, value in tests[0].items():
        values = [t.get(key) for t in tests]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        out[key] = sum(values) / len(values) if numeric else value
    return out


def summed(confusions: list[Confusion]) -> Confusion:
    """Several seeds' confusions as one."""
    first = confusions[0]
    counts = np.sum([c.counts for c in confusions], axis=0).tolist()
    spurious = None if first.spurious is None else sum(c.spurious or 0 for c in confusions)
    return replace(first, counts=counts, spurious=spurious)


def collect(params: TaskParams, layout: Layout) -> list[dict[str, Any]]:
    """Everything the report needs per cell of one task, over its seeds, from the files the
    earlier stages wrote."""
    results = []
    for cell in params.cells:
        runs = []
        for seed in params.seeds:
            try:
                train = read_record(layout.model_dir(cell, seed))
                rows = read_predictions(layout.predictions(cell, seed))
                runs.append({"seed": seed, "train": train,
                             "test": read_json(layout.test_metrics(cell, seed)),
                             "history": read_history(layout.history(cell, seed)),
                             "rows": rows, "per_label": read_json(layout.per_label(cell, seed))})
            except (OSError, ValueError, KeyError, RnnbenchError) as err:
                fail(f"report: results for {params.name}/{cell}/seed{seed} are missing or "
                     f"unreadable ({err}); run `dvc repro`")
        train = runs[0]["train"]
        metric, _ = headline(train.family, train.labels)
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
            "confusion": summed([confusion(r["rows"], train.labels) for r in runs]),
            # summed over seeds: the bootstrap then compares the seed-averaged metric
            "num": np.sum([e[0] for e in examples], axis=0),
            "den": np.sum([e[1] for e in examples], axis=0),
        })
    return results
