"""Each test example's score, and the metric a task ranks by: what both the report's tests and
the retraining round's promotion resample."""

from __future__ import annotations

from collections.abc import Sequence

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
    2tp + fp + fn (entity F1), or minus the nats over the tokens of a sentence (a language
    model's log-likelihood per token, whose exp(-x) is its perplexity)."""
    num, den = np.zeros(n), np.zeros(n)
    if metric == "log_likelihood":
        for r in rows:
            i = int(r["example"])
            num[i], den[i] = -float(r["nats"]), int(r["tokens"])
        return num, den
    for i, (gold, pred) in by_example(rows).items():
        if metric == "entity_f1":
            g, p = bio_spans(gold), bio_spans(pred)
            tp = len(g & p)
            num[i], den[i] = 2 * tp, 2 * tp + len(p - g) + len(g - p)
        else:
            num[i], den[i] = sum(a == b for a, b in zip(gold, pred, strict=True)), len(gold)
    return num, den


def by_group(values: np.ndarray, groups: Sequence[object]) -> np.ndarray:
    """Per-example values (the last axis) summed per split group, the groups in sorted order.

    Splits keep a group (a movie, a document) whole, so its examples are not independent
    draws: a bootstrap over examples would treat 20 snippets of one film as 20 pieces of
    evidence. Every ranked metric is sum(num) / sum(den), so resampling these per-group sums
    is resampling groups (a cluster bootstrap)."""
    _, index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    x = np.asarray(values, dtype=float)
    if x.shape[-1] != index.size:
        raise ValueError(f"{x.shape[-1]} values for {index.size} group labels")
    out = np.zeros((*x.shape[:-1], int(index.max()) + 1 if index.size else 0))
    np.add.at(out, (..., index), x)
    return out


def headline(family: Family, labels: list[str]) -> tuple[str, str]:
    """The metric the verdict ranks by, and its name: entity F1 for NER, a language model's
    log-likelihood per token (perplexity is its exp(-x): the same order, reversed), else
    accuracy."""
    if family == Family.LANGUAGE_MODEL:
        return "log_likelihood", "perplexity"
    if family == Family.TAGGING and is_bio(labels):
        return "entity_f1", "entity F1"
    return "accuracy", "token accuracy" if family == Family.TAGGING else "accuracy"
