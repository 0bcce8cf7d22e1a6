"""Evaluation of the cells trained by the shared `trained` fixture: weights saved for a
weights-only load, each network rebuilt from its record to the same scores, and the one-line
error of evaluating a cell that was never trained."""

import json
import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.evaluation.evaluate import evaluate_cell, load_model
from pipeline.model.record import read_record
from tests.conftest import SEED, TASK, copy_prepared

TIMINGS = {"inference_examples_per_s"}


def test_checkpoint_loads_with_weights_only(trained):
    _, layout, _, _ = trained
    state = torch.load(layout.model_dir("gru", SEED) / "model.pt", weights_only=True)
    assert "encoder.layers.0.0.weight_ih_l0" in state


def test_each_network_is_rebuilt_from_its_record_to_the_same_scores(trained):
    params, layout, records, _ = trained
    for cell in params.cells:
        model, record = load_model(layout, cell, SEED)
        assert record == read_record(layout.model_dir(cell, SEED)) == records[cell]
        assert sum(p.numel() for p in model.parameters()) == record.num_parameters
        written = json.loads(layout.test_metrics(cell, SEED).read_text())
        again = evaluate_cell(params, cell, layout, SEED)
        assert {k: v for k, v in again.items() if k not in TIMINGS} == {
            k: v for k, v in written.items() if k not in TIMINGS}


def test_evaluating_an_untrained_cell_names_the_train_stage(prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(copy_prepared(prepared, tmp_path))
    result = CliRunner().invoke(app, ["evaluate", "lstm"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: models/{TASK}/lstm/seed{SEED}: no trained model; "
                                     f"run train@{TASK}-lstm-{SEED}")
    assert not (tmp_path / "metrics").exists()


def test_an_empty_weights_file_is_one_line_naming_it(trained, tmp_path, monkeypatch):
    """A model.pt cut to 0 bytes (a full disk, a killed copy): PyTorch's EOFError reached
    Click, which printed only `Aborted.` (its answer to Ctrl-D)."""
    _, layout, *_ = trained
    project = copy_prepared(layout.root, tmp_path)
    model = Path("models") / TASK / "gru" / f"seed{SEED}"
    shutil.copytree(layout.root / model, project / model)
    (project / model / "model.pt").write_bytes(b"")
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["evaluate", "gru"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: {model / 'model.pt'}: unreadable weights (empty "
                                     f"file); run train@{TASK}-gru-{SEED}")
    assert not (project / "metrics").exists()
