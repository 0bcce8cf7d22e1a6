"""The tune stage: a real Optuna study per cell on the prepared sample (real Lightning fits, a
real sqlite storage and MLflow store), the same budget for every cell, the test split never
read, a study interrupted and resumed, and the train stage at the tuned settings."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.tuning.settings import read_tuning, tune_cell
from tests.conftest import SEED, TASK, copy_prepared, load_task

pytestmark = pytest.mark.slow


def tuning_on(folder: Path, **changes: object) -> None:
    path = folder / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["tune"].update({"enabled": True, "trials": 3, "max_epochs": 2, "startup_trials": 1,
                        "warmup_epochs": 0, **changes})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def tuned_project(prepared, tmp_path_factory) -> Path:
    """A project whose every cell was tuned, 3 trials each, with its test split removed."""
    folder = copy_prepared(prepared, tmp_path_factory.mktemp("tuned"))
    tuning_on(folder)
    test_files = list((folder / "data" / TASK / "prepared").glob("test*"))
    assert test_files  # what a fit would read for testing: gone, so a read would fail
    for path in test_files:
        path.unlink()
    params, layout = load_task(folder)
    for cell in params.cells:
        tune_cell(params, cell, layout)
    return folder


def test_every_cell_gets_the_same_budget_without_the_test_split(tuned_project):
    params, layout = load_task(tuned_project)
    for cell in params.cells:
        record = read_tuning(layout.tuning(cell))
        assert record.enabled and record.trials == 3 and record.monitor == "val_acc"
        assert [t.number for t in record.history] == [0, 1, 2]
        tuned = set(record.settings)
        assert ("model.forget_bias" in tuned) == (cell == "lstm")  # the LSTM's alone
        assert {"train.lr", "model.dropout", "model.hidden_size"} <= tuned
        assert record.best_value == max(t.value for t in record.history if t.value is not None)
        # trial 0 is the untuned settings, where the space holds them
        assert record.history[0].params["train.lr"] == params.train.lr
        assert record.default_value == record.history[0].value


def test_trials_are_nested_mlflow_runs_under_the_comparison(tuned_project):
    client = MlflowClient(f"sqlite:///{tuned_project / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(TASK)
    trials = client.search_runs([exp.experiment_id], "tags.`rnnbench.kind` = 'trial'")
    by_cell: dict[str, int] = {}
    for run in trials:
        by_cell[run.data.tags["rnnbench.cell"]] = by_cell.get(run.data.tags["rnnbench.cell"], 0) + 1
        assert "train.lr" in run.data.params and run.info.status == "FINISHED"
    assert by_cell == {"rnn": 3, "lstm": 3, "gru": 3}
    assert len({r.data.tags["mlflow.parentRunId"] for r in trials}) == 1


def test_the_train_stage_fits_each_cell_at_its_best_settings(tuned_project, prepared):
    from pipeline.training.fit import train_cell

    folder = tuned_project
    for path in (prepared / "data" / TASK / "prepared").glob("test*"):  # a fit tests again
        shutil.copy(path, folder / "data" / TASK / "prepared" / path.name)
    params, layout = load_task(folder)
    record = read_tuning(layout.tuning("gru"))
    trained = train_cell(params, "gru", layout, SEED)
    assert trained is not None
    for key, value in record.settings.items():
        section, name = key.split(".", 1)
        assert getattr(getattr(trained.params, section), name) == value


def test_tuning_off_writes_a_record_that_training_ignores(prepared, tmp_path):
    folder = copy_prepared(prepared, tmp_path)
    params, layout = load_task(folder)
    record = tune_cell(params, "lstm", layout)
    assert not record.enabled and record.settings == {}
    assert json.loads(layout.tuning("lstm").read_text())["enabled"] is False
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from pipeline.tuning.settings import tune_cell; "
         "print('torch' in sys.modules)"], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"


def finished_trials(folder: Path) -> list[tuple[int, float]]:
    """The study's finished trials, as its storage holds them (none before it exists)."""
    dbs = list((folder / ".rnnbench" / "tuning").glob(f"{TASK}-rnn-*.db"))
    summaries = optuna.get_all_study_summaries(f"sqlite:///{dbs[0]}") if dbs else []
    if not summaries:
        return []
    study = optuna.load_study(study_name=summaries[0].study_name, storage=f"sqlite:///{dbs[0]}")
    return [(t.number, t.value) for t in study.trials
            if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def test_an_interrupted_study_resumes_where_it_stopped(prepared, tmp_path):
    folder = copy_prepared(prepared, tmp_path)
    tuning_on(folder, trials=4, max_epochs=3)
    stage = [sys.executable, "-m", "stages.tune", TASK, "rnn"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(stage, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # until its first trial has finished
        lines.append(line)
        if "rnn trial 0:" in line:
            break
    time.sleep(1)  # into the next trial's fit
    proc.send_signal(signal.SIGINT)
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    before = finished_trials(folder)
    assert 1 <= len(before) < 4
    assert not (folder / "metrics" / TASK / "tuning" / "rnn.json").exists()
    rerun = subprocess.run(stage, cwd=folder, env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = finished_trials(folder)
    assert len(after) == 4 and after[: len(before)] == before  # kept, not run again
    ran = [int(n) for n in re.findall(r"rnn trial (\d+):", rerun.stderr)]
    assert len(ran) == 4 - len(before) and min(ran) > before[-1][0]  # only what was missing
    assert read_tuning(folder / "metrics" / TASK / "tuning" / "rnn.json").trials == 4
