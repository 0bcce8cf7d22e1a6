"""Classification metrics from label ids, in plain Python (small, exact, easy to test)."""

from __future__ import annotations

from collections.abc import Sequence


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n: int) -> list[list[int]]:
    """cm[i][j]: examples of true class i predicted as j."""
    cm = [[0] * n for _ in range(n)]
    for t, p in zip(y_true, y_pred, strict=True):
        cm[t][p] += 1
    return cm


def accuracy(cm: list[list[int]]) -> float:
    total = sum(map(sum, cm))
    return sum(cm[i][i] for i in range(len(cm))) / total if total else 0.0


def per_class_f1(cm: list[list[int]]) -> list[float]:
    scores = []
    for i in range(len(cm)):
        tp = cm[i][i]
        predicted = sum(row[i] for row in cm)
        actual = sum(cm[i])
        scores.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    return scores


def macro_f1(cm: list[list[int]]) -> float:
    """Unweighted mean of per-class F1, over the classes present in truth or predictions."""
    present = [i for i in range(len(cm)) if sum(cm[i]) or sum(row[i] for row in cm)]
    f1 = per_class_f1(cm)
    return sum(f1[i] for i in present) / len(present) if present else 0.0
