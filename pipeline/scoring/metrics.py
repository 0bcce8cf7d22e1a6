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


def per_class_prf(cm: list[list[int]]) -> list[dict[str, float]]:
    """Precision, recall, F1 and support of each class, from a confusion matrix."""
    rows = []
    for i in range(len(cm)):
        tp, predicted, actual = cm[i][i], sum(row[i] for row in cm), sum(cm[i])
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        rows.append({"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                     "support": actual})
    return rows


def is_bio(labels: Sequence[str]) -> bool:
    """Whether a tag set is BIO-encoded entities (O, B-TYPE, I-TYPE) and has an entity."""
    return any(t != "O" for t in labels) and all(
        t == "O" or (t[:2] in ("B-", "I-") and len(t) > 2) for t in labels)


def bio_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entities as (type, start, end exclusive), following conlleval/seqeval (default mode):
    an I- tag after O or after another type starts a new entity, as a B- would."""
    spans = set()
    kind, start = None, 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        begins = prefix == "B" or (prefix == "I" and label != kind)
        if kind is not None and (tag == "O" or begins):
            spans.add((kind, start, i))
            kind = None
        if tag != "O" and begins:
            kind, start = label, i
    return spans


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
                  ) -> dict[str, object]:
    """Micro precision/recall/F1 over exact entity matches, overall and per entity type."""
    gold_spans = [bio_spans(g) for g in gold]
    pred_spans = [bio_spans(p) for p in pred]
    types = sorted({s[0] for spans in gold_spans + pred_spans for s in spans})

    def score(kind: str | None) -> dict[str, float]:
        keep = (lambda s: True) if kind is None else (lambda s: s[0] == kind)
        tp = sum(len({s for s in g if keep(s)} & {s for s in p if keep(s)})
                 for g, p in zip(gold_spans, pred_spans, strict=True))
        n_gold = sum(sum(1 for s in g if keep(s)) for g in gold_spans)
        n_pred = sum(sum(1 for s in p if keep(s)) for p in pred_spans)
        prec = tp / n_pred if n_pred else 0.0
        rec = tp / n_gold if n_gold else 0.0
        return {"precision": prec, "recall": rec,
                "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0, "support": n_gold}

    return {**score(None), "per_type": {t: score(t) for t in types}}
