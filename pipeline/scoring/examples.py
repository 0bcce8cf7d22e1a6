"""Each test example's score, and the metric a task ranks by: what both the report's tests and
the retraining round's promotion resample."""

from __future__ import annotations

import numpy as np

from pipeline.config import Family
from pipeline.scoring.metrics import bio_spans, is_bio


def by_example(rows: list[dict[str, str]]) -> dict[int, tuple[list[str], list[str]]]:
    """Prediction rows (one per example or token) -> example index -> (gold, predicted)."""
    out: dict[int, tuple[list[str], list[str]]] = {}
    for r in rows:
        gold, pred = out.setdefault(int(r["example"]), ([], []))
        gold.append(r["actual"])
        pred.append(r["predicted"])
    return out


def per_example(rows: list[dict[str, str]], metric: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The headline metric of each test example as a fraction num/den, so that the metric over
    any resample of examples is sum(num) / sum(den): hits over tokens (accuracy), or 2tp over
    2tp + fp + fn (entity F1)."""
    num, den = np.zeros(n), np.zeros(n)
    for i, (gold, pred) in by_example(rows).items():
        if metric == "entity_f1":
            g, p = bio_spans(gold), bio_spans(pred)
            tp = len(g & p)
            num[i], den[i] = 2 * tp, 2 * tp + len(p - g) + len(g - p)
        else:
            num[i], den[i] = sum(a == b for a, b in zip(gold, pred, strict=True)), len(gold)
    return num, den


def headline(family: Family, labels: list[str]) -> tuple[str, str]:
    """The metric the verdict ranks by, and its name: entity F1 for NER, else accuracy."""
    if family == Family.TAGGING and is_bio(labels):
        return "entity_f1", "entity F1"
    return "accuracy", "token accuracy" if family == Family.TAGGING else "accuracy"
