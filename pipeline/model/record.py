"""The record that travels with each trained model (`train.json` beside `model.pt`): what the
network is, so that whoever loads the weights rebuilds it from this one record (as nanoGPT's
checkpoint carries its `model_args`), and where and how it was trained."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pipeline.config import Cell, CellParams, Family, PrepareParams
from pipeline.config.sections import describe
from pipeline.errors import fail, redact
from pipeline.files import read_json, write_json
from pipeline.scoring.metrics import is_bio

if TYPE_CHECKING:  # the record is read without PyTorch (`rnnbench ui` lists runs by it)
    import torch

    from pipeline.model.networks import RecurrentNet

RECORD_FILE = "train.json"


# Here, not beside the LightningModule: the report reads a record's monitor, and importing
# Lightning would add 2.3 s to its stage's start.
def monitor_for(labels: list[str] | None, family: Family | None = None) -> str:
    """The validation metric early stopping, the kept weights and tuning follow."""
    if family == Family.LANGUAGE_MODEL:
        return "val_ppl"
    return "val_entity_f1" if labels and is_bio(labels) else "val_acc"


def lower_is_better(monitor: str) -> bool:
    """Perplexity falls as a model improves; accuracy and F1 rise."""
    return monitor == "val_ppl"


class TrainRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    cell: Cell
    seed: int
    run_id: str  # the MLflow run it was trained under, and its comparison (parent) run
    parent_run_id: str
    tracking_uri: str  # without its password, if it had one
    num_parameters: int
    train_seconds: float
    epochs: int
    best_epoch: int  # 0: no epoch validated, the last weights were kept
    monitor: str  # val_acc, or val_entity_f1 for BIO tag sets
    best_val: float
    accelerator: str
    precision: str
    cpu: str | None = None  # the CPU type (pipeline/machine.py); not recorded by older fits
    data_hash: str  # of the prepared tensors it was trained on
    family: Family
    vocab_size: int
    num_chars: int  # the char CNN's alphabet (0: none)
    labels: list[str]
    params: CellParams  # the settings after the cell's overrides (hidden_size as built)
    prepare: PrepareParams  # how texts become tokens (lowercase, max_length) for predictions

    _no_password = field_validator("tracking_uri")(lambda cls, uri: redact(uri))

    def build_network(self, vectors: dict[str, torch.Tensor] | None = None) -> RecurrentNet:
        """The untrained network these weights belong to."""
        from pipeline.model.networks import build_network

        return build_network(self.family, self.cell, self.vocab_size, len(self.labels),
                             self.params.model, vectors, self.num_chars)


def write_record(folder: Path, record: TrainRecord) -> None:
    write_json(folder / RECORD_FILE, record.model_dump(mode="json"))


def read_record(folder: Path, hint: str = "retrain this cell") -> TrainRecord:
    """The record of the model in `folder`; one line naming the file, and ending in `hint`,
    where it is missing or is not a record of this version of rnnbench."""
    path = folder / RECORD_FILE
    try:
        return TrainRecord.model_validate(read_json(path, hint))
    except (OSError, ValueError) as err:  # ValidationError is a ValueError
        reason = describe(err) if isinstance(err, ValidationError) else str(err)
        fail(f"{path}: no readable model record ({reason}); {hint}")
