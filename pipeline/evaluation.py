"""Evaluate one trained cell on the held-out test split."""

from __future__ import annotations

import csv
import sys
import time
from typing import Any

import torch
from torch.nn import functional as F

from pipeline import tracking
from pipeline.config import ModelParams, Params
from pipeline.data import BucketBatchSampler, EncodedSplit, collate
from pipeline.errors import fail
from pipeline.files import atomic_file, read_json, write_json
from pipeline.metrics import accuracy, confusion_matrix, macro_f1
from pipeline.models import SentenceClassifier
from pipeline.paths import Layout


def load_model(layout: Layout, cell: str) -> tuple[SentenceClassifier, dict[str, Any]]:
    folder = layout.model_dir(cell)
    try:
        summary = read_json(folder / "train.json")
        state = torch.load(folder / "model.pt", weights_only=True, map_location="cpu")
    except (OSError, ValueError, RuntimeError) as err:
        fail(f"{folder}: no trained model ({err}); run the train stage for {cell}")
    model = SentenceClassifier(cell, summary["vocab_size"], len(summary["labels"]),
                               ModelParams(**summary["params"]["model"]))
    model.load_state_dict(state)
    return model.eval(), summary


@torch.inference_mode()
def predict(model: SentenceClassifier, split: EncodedSplit, batch_size: int
            ) -> tuple[list[int], float, float]:
    """Predictions in example order, mean loss, and examples per second (after one warm-up)."""
    batches = list(BucketBatchSampler(split.lengths, batch_size, shuffle=False))
    preds = [0] * len(split)
    loss_sum = 0.0
    model(*collate([split[i] for i in batches[0]])[:2])  # warm-up: first call allocates
    start = time.perf_counter()
    for idx in batches:
        ids, lengths, labels = collate([split[i] for i in idx])
        logits = model(ids, lengths)
        loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        for i, p in zip(idx, logits.argmax(-1).tolist(), strict=True):
            preds[i] = p
    seconds = time.perf_counter() - start
    return preds, loss_sum / len(split), len(split) / seconds


def evaluate_cell(params: Params, cell: str, layout: Layout) -> dict[str, Any]:
    model, summary = load_model(layout, cell)
    test = EncodedSplit(layout.split("test"))
    labels: list[str] = summary["labels"]
    preds, loss, throughput = predict(model, test, params.evaluate.batch_size)
    truth = test.labels.tolist()
    cm = confusion_matrix(truth, preds, len(labels))
    metrics = {
        "accuracy": round(accuracy(cm), 6),
        "macro_f1": round(macro_f1(cm), 6),
        "loss": round(loss, 6),
        "num_parameters": summary["num_parameters"],
        "train_seconds": summary["train_seconds"],
        "epochs": summary["epochs"],
        "inference_examples_per_s": round(throughput, 1),
        "test_examples": len(truth),
    }
    write_json(layout.test_metrics(cell), metrics)
    with atomic_file(layout.predictions(cell)) as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows((labels[t], labels[p]) for t, p in zip(truth, preds, strict=True))

    client = tracking.client_for(params, layout.root)
    run_id = summary["run_id"]
    tracking.ensure_run(client, run_id)
    tracking.log_metrics(client, run_id, {f"test_{k}": v for k, v in metrics.items()
                                          if k not in ("num_parameters", "train_seconds",
                                                       "epochs")})
    client.log_artifact(run_id, str(layout.test_metrics(cell)), "evaluation")
    client.log_artifact(run_id, str(layout.predictions(cell)), "evaluation")
    print(f"{cell}: test accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f},"
          f" {throughput:,.0f} examples/s", file=sys.stderr)
    return metrics
