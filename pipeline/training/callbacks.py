"""Callbacks of a fit: the per-epoch history, and the state a resumed fit needs."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from pipeline import tracking
from pipeline.data.datamodule import TextDataModule
from pipeline.files import atomic_file

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_entity_f1",
                  "val_ppl", "seconds")
METRICS = HISTORY_FIELDS[1:-1]


class EpochHistory(pl.Callback):
    """Per-epoch train/val loss and accuracy, kept for the CSV plot and sent to MLflow."""

    def __init__(self, client: Any = None, run_id: str | None = None, echo: bool = False):
        self.client, self.run_id, self.echo = client, run_id, echo
        self.rows: list[dict[str, float]] = []
        self.start = time.perf_counter()

    def restore(self, rows: list[dict[str, float]]) -> None:
        """Continue the history of a fit resumed after `rows`, and give them to the new run."""
        self.rows = list(rows)
        if rows:
            self.start = time.perf_counter() - rows[-1]["seconds"]
            print(f"resuming after epoch {rows[-1]['epoch']:.0f} from its checkpoint",
                  file=sys.stderr, flush=True)
        if self.client is not None:
            for row in rows:
                tracking.log_metrics(self.client, self.run_id,
                                     {k: v for k, v in row.items() if k != "epoch"},
                                     step=int(row["epoch"]))

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # In Lightning 2.x this hook runs after the epoch's validation, so both are in.
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1,
               **{k: round(float(m[k]), 6) for k in METRICS if k in m},
               "seconds": round(time.perf_counter() - self.start, 2)}
        self.rows.append(row)
        if self.echo:  # no progress bar (logs, CI): one line per epoch instead
            print(f"epoch {row['epoch']}: " + ", ".join(
                f"{k} {row[k]:.4f}" for k in METRICS if k in row)
                + f" ({row['seconds']:.0f}s)", file=sys.stderr, flush=True)
        if self.client is not None:
            tracking.log_metrics(self.client, self.run_id,
                                 {k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    with atomic_file(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


class ResumeState(pl.Callback):
    """What a resumed fit needs beyond Lightning's checkpoint (weights, optimizer, epoch, early
    stopping): the global random stream (dropout, the loaders' seeds), the epoch the batch order
    has reached and the history so far, so that it ends with an uninterrupted fit's weights."""

    def __init__(self, history: EpochHistory, data: TextDataModule):
        self.history, self.data = history, data

    def state_dict(self) -> dict[str, Any]:
        return {"torch_rng": torch.get_rng_state(), "rows": self.history.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Lightning restores this before it makes the training loader, and then draws from the
        # stream making it, as an unbroken fit does when the epoch starts.
        torch.set_rng_state(state["torch_rng"])
        self.data.first_epoch = len(state["rows"])
        self.history.restore(state["rows"])
