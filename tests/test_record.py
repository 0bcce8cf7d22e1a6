"""The record beside each trained model (train.json): written and read back as one typed
object, enough to rebuild the network its weights belong to, and refused in one line when it
is not one."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.config import Family, parse_params
from pipeline.errors import RnnbenchError
from pipeline.model.record import RECORD_FILE, TrainRecord, read_record, write_record
from tests.conftest import repo_params


def record(cell: str = "gru", family: Family = Family.TAGGING, **changes) -> TrainRecord:
    task = "ner" if family == Family.TAGGING else "sentiment"
    task_params = parse_params(repo_params()).for_task(task)
    params = task_params.for_cell(cell, 42)
    fields = dict(task=task, cell=cell, seed=42, run_id="r1", parent_run_id="p1",
                  tracking_uri="sqlite:///mlruns/mlflow.db", num_parameters=1234,
                  train_seconds=1.5, epochs=3, best_epoch=2, monitor="val_entity_f1",
                  best_val=0.25, accelerator="cpu", precision="32-true", data_hash="abc",
                  family=family, vocab_size=50, num_chars=20,
                  labels=["O", "B-person", "I-person"], params=params,
                  prepare=task_params.prepare)
    return TrainRecord(**{**fields, **changes})


def test_a_record_reads_back_as_it_was_written(tmp_path):
    written = record()
    write_record(tmp_path, written)
    assert read_record(tmp_path) == written
    raw = json.loads((tmp_path / RECORD_FILE).read_text())
    assert raw["family"] == "tagging" and raw["params"]["model"]["char_filters"] == 30


@pytest.mark.parametrize(("cell", "family"), [("gru", Family.TAGGING),
                                              ("lstm", Family.CLASSIFICATION)])
def test_the_record_rebuilds_the_network_as_recorded(cell, family):
    """The width as built (equal_params changes it), the cell, the classes and the char CNN
    come from the record, not from today's params.yaml."""
    tagging = family == Family.TAGGING
    rec = record(cell, family) if tagging else record(cell, family, num_chars=0,
                                                      labels=["neg", "pos"])
    width = rec.params.model.hidden_size + 7
    rec = rec.model_copy(update={"params": rec.params.model_copy(update={
        "model": rec.params.model.model_copy(update={"hidden_size": width})})})
    net = rec.build_network()
    first = net.encoder.layers[0][0]
    assert isinstance(first, {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell])
    assert first.hidden_size == width and net.embedding.num_embeddings == rec.vocab_size
    ids, lengths = torch.randint(1, 50, (2, 7)), torch.tensor([7, 4])
    chars = torch.randint(1, 20, (2, 7, 5)) if tagging else None
    with torch.no_grad():
        out = net.eval()(ids, lengths, chars)
    assert out.shape == ((2, 7, 3) if tagging else (2, 2))


@pytest.mark.parametrize(("content", "says"), [
    (None, "No such file"),
    ("{not json", "line 1: not valid JSON (Expecting property name"),
    (json.dumps({"task": "ner"}), "cell: missing key"),
])
def test_a_missing_or_foreign_record_is_one_line_naming_the_file(tmp_path, content, says):
    if content is not None:
        (tmp_path / RECORD_FILE).write_text(content)
    with pytest.raises(RnnbenchError) as err:
        read_record(tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path / RECORD_FILE))
    assert says in message and message.endswith("retrain this cell") and "\n" not in message
