"""Evaluate trained cells on the held-out test split (sentences or tokens)."""

from __future__ import annotations

import csv
import sys
import time
from typing import Any

import torch

from pipeline import tracking
from pipeline.config import Family, TaskParams
from pipeline.config.records import stored
from pipeline.data.loading import EncodedSplit, collate
from pipeline.data.records import read_stats
from pipeline.data.text import UNK_ID
from pipeline.evaluation.diagnostics import diagnose
from pipeline.evaluation.language_model import evaluate_baselines, evaluate_language_model
from pipeline.files import atomic_file
from pipeline.model.inference import forward_batches, load_trained
from pipeline.model.networks import RecurrentNet, loss_and_hits
from pipeline.model.record import TrainRecord
from pipeline.paths import Layout
from pipeline.scoring.metrics import (
    accuracy,
    confusion_matrix,
    entity_scores,
    is_bio,
    macro_f1,
    per_class_prf,
)
from pipeline.scoring.records import (
    PerLabel,
    TestMetrics,
    write_diagnostics,
    write_per_label,
    write_test_metrics,
)

Prediction = int | list[int]


def load_model(layout: Layout, cell: str, seed: int) -> tuple[RecurrentNet, TrainRecord]:
    """A trained cell's network, rebuilt from its record and loaded with its weights."""
    return load_trained(layout.model_dir(cell, seed),
                        hint=f"run train@{layout.task}-{cell}-{seed}")


@torch.inference_mode()
def predict(model: RecurrentNet, split: EncodedSplit, batch_size: int
            ) -> tuple[list[Prediction], float, float]:
    """Predictions in example order (a label, or a tag list), mean loss over counted targets,
    and examples per second (after one warm-up batch)."""
    preds: list[Prediction] = [0] * len(split)
    loss_sum, counted = 0.0, 0
    tagging = split.family == Family.TAGGING
    warm = collate([split[i] for i in range(min(batch_size, len(split)))])
    model(warm.ids, warm.lengths, warm.chars)  # warm-up: the first call allocates
    start = time.perf_counter()
    for idx, (_, lengths, targets, _), logits in forward_batches(model, split, batch_size):
        loss, _, n = loss_and_hits(model, logits, lengths, targets)
        loss_sum, counted = loss_sum + float(loss) * n, counted + n
        best = model.predict(logits, lengths).tolist()
        for row, i in enumerate(idx):
            preds[i] = best[row][: int(lengths[row])] if tagging else best[row]
    seconds = time.perf_counter() - start
    return preds, loss_sum / max(counted, 1), len(split) / seconds


def _flat(values: list) -> list[int]:
    return [v for row in values for v in row] if values and isinstance(values[0], list) else values


def score(split: EncodedSplit, preds: list[Prediction], labels: list[str]
          ) -> tuple[dict[str, Any], PerLabel, list[list[int]]]:
    """(the metrics measured on predictions, named as TestMetrics' fields; per-label scores;
    confusion matrix) for either task family."""
    truth = split.targets()
    cm = confusion_matrix(_flat(truth), _flat(preds), len(labels))
    metrics: dict[str, Any] = {"accuracy": round(accuracy(cm), 6),
                               "macro_f1": round(macro_f1(cm), 6)}
    per_label = PerLabel(scores={lab: {k: round(v, 6) for k, v in row.items()}
                                 for lab, row in zip(labels, per_class_prf(cm), strict=True)})
    if split.family == Family.TAGGING:
        unknown = split.ids == UNK_ID  # tokens the vocabulary has never seen
        gold, guess = torch.tensor(_flat(truth)), torch.tensor(_flat(preds))
        metrics["oov_tokens"] = int(unknown.sum())
        metrics["oov_accuracy"] = round(float((gold == guess)[unknown].float().mean()), 6) \
            if unknown.any() else None
        if is_bio(labels):
            ents = entity_scores([[labels[t] for t in row] for row in truth],
                                 [[labels[t] for t in row] for row in preds])
            metrics.update({f"entity_{k}": round(ents[k], 6)
                            for k in ("precision", "recall", "f1")})
            per_label = PerLabel(scores=ents["per_type"], tags=per_label.scores)
    return metrics, per_label, cm


def evaluate_cell(params: TaskParams, cell: str, layout: Layout, seed: int | None = None
                  ) -> dict[str, Any]:
    """Test metrics, per-label scores, per-token predictions and long-range diagnostics of one
    trained cell and seed (default: the first seed), written to metrics/<task>/ and logged to
    its MLflow run."""
    seed = params.seeds[0] if seed is None else seed
    if read_stats(layout.require_prepared()).family == Family.LANGUAGE_MODEL:
        return evaluate_language_model(params, cell, layout, seed)
    model, record = load_model(layout, cell, seed)
    torch.set_num_threads(record.params.train.threads)  # the fit's: same sums, same numbers
    test = EncodedSplit(layout.split("test"))
    labels = record.labels
    preds, loss, throughput = predict(model, test, params.evaluate.batch_size)
    scores, per_label, _ = score(test, preds, labels)
    metrics = TestMetrics(**scores, loss=round(loss, 6), num_parameters=record.num_parameters,
                          train_seconds=record.train_seconds, epochs=record.epochs,
                          inference_examples_per_s=round(throughput, 1), test_examples=len(test))
    write_test_metrics(layout.test_metrics(cell, seed), metrics)
    write_per_label(layout.per_label(cell, seed), per_label)
    diagnostics = diagnose(model, test)
    write_diagnostics(layout.diagnostics(cell, seed), diagnostics)
    with atomic_file(layout.predictions(cell, seed)) as fh:
        writer = csv.writer(fh)
        writer.writerow(["example", "actual", "predicted"])  # example: for paired tests
        for i, (gold, guess) in enumerate(zip(test.targets(), preds, strict=True)):
            pairs = zip(gold, guess, strict=True) if isinstance(gold, list) else [(gold, guess)]
            writer.writerows((i, labels[t], labels[p]) for t, p in pairs)

    client = tracking.client_for(params, layout.root)
    run_id = record.run_id
    tracking.ensure_run(client, run_id)
    tracking.log_metrics(client, run_id, metrics.logged())
    tracking.log_metrics(client, run_id, {
        "reference_max_abs_diff": diagnostics.reference_max_abs_diff})
    tracking.log_files(client, run_id, [
        (path, "evaluation") for path in (layout.test_metrics(cell, seed),
                                          layout.per_label(cell, seed),
                                          layout.predictions(cell, seed),
                                          layout.diagnostics(cell, seed))])
    extra = f", entity F1 {metrics.entity_f1:.4f}" if metrics.entity_f1 is not None else ""
    untuned = " (untuned)" if layout.untuned else ""
    print(f"{layout.task}/{cell}/seed{seed}{untuned}: test accuracy {metrics.accuracy:.4f}, "
          f"macro-F1 {metrics.macro_f1:.4f}{extra}, {throughput:,.0f} examples/s",
          file=sys.stderr)
    return stored(metrics)  # as the file holds it


def evaluate_task(params: TaskParams, layout: Layout
                  ) -> dict[tuple[str, int, bool], dict[str, Any]]:
    """Every compared cell and seed of one task (with tuning on, also each at its untuned
    settings), in one process: a stage per run spent more time importing than evaluating
    (about 4 s of 5.5). Keyed (cell, seed, untuned)."""
    layouts = [layout, layout.as_untuned()] if params.tuned else [layout]
    if read_stats(layout.require_prepared()).family == Family.LANGUAGE_MODEL:
        evaluate_baselines(layout)
    return {(cell, seed, at.untuned): evaluate_cell(params, cell, at, seed)
            for at in layouts for cell in params.cells for seed in params.seeds}
