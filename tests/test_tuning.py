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

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_params
from pipeline.model.record import read_record
from pipeline.tuning.settings import read_tuning
from pipeline.tuning.tune import tune_cell
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
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    raw["train"]["batch_size"] = 16  # outside the space's choices (32, 64, 128)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
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
        assert record.best_value == max(t.value for t in record.history if t.state == "COMPLETE")
        # trial 0 fitted the untuned settings exactly, also where the space cannot hold them:
        # a batch of 16, and the LSTM's forget-gate bias left to PyTorch (null)
        untuned = params.for_cell(cell)
        assert record.history[0].params == {
            key: getattr(getattr(untuned, key.split(".")[0]), key.split(".")[1])
            for key in params.tune.dimensions(cell)}
        assert record.history[0].params["train.batch_size"] == 16
        assert record.history[0].params.get("model.forget_bias", "absent") in (None, "absent")
        assert all(t.params["train.batch_size"] in (32, 64, 128) for t in record.history[1:])
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


@pytest.fixture(scope="module")
def compared(tuned_project, prepared) -> Path:
    """The tuned project through its train stages (each cell at its best settings, then at
    the untuned ones), its evaluate stage and the report."""
    from pipeline.evaluation.evaluate import evaluate_task
    from pipeline.report.assemble import write_report
    from pipeline.tuning.fits import train_stage

    folder = tuned_project
    for path in (prepared / "data" / TASK / "prepared").glob("test*"):  # a fit tests again
        shutil.copy(path, folder / "data" / TASK / "prepared" / path.name)
    shutil.copytree(prepared / "data" / TASK / "raw", folder / "data" / TASK / "raw")
    params, layout = load_task(folder)
    for cell in params.cells:
        train_stage(params, cell, layout, SEED)
    evaluate_task(params, layout)
    write_report(load_params(folder / "params.yaml"), folder)
    return folder


def test_the_train_stage_fits_each_cell_at_its_best_settings_and_untuned(compared):
    params, layout = load_task(compared)
    client = MlflowClient(f"sqlite:///{compared / 'mlruns' / 'mlflow.db'}")
    for cell in params.cells:
        record = read_tuning(layout.tuning(cell))
        trained = read_record(layout.model_dir(cell, SEED))
        untuned = read_record(layout.as_untuned().model_dir(cell, SEED))
        assert untuned.params == params.for_cell(cell, SEED)
        for key, value in record.settings.items():
            section, name = key.split(".", 1)
            assert getattr(getattr(trained.params, section), name) == value
        tags = {run_id: client.get_run(run_id).data for run_id in (trained.run_id,
                                                                   untuned.run_id)}
        assert tags[trained.run_id].tags["rnnbench.settings"] == "tuned"
        assert tags[untuned.run_id].tags["rnnbench.settings"] == "untuned"
        # each run logs the settings it trained at
        assert float(tags[trained.run_id].params["train.lr"]) == trained.params.train.lr
        assert float(tags[untuned.run_id].params["train.lr"]) == params.train.lr
        assert layout.test_metrics(cell, SEED).exists()
        assert layout.as_untuned().test_metrics(cell, SEED).exists()
    # the twin is its own output, beside the tuned fit's, not inside it
    twin, tuned = layout.as_untuned().model_dir("rnn", SEED), layout.model_dir("rnn", SEED)
    assert twin.parent == tuned.parent and not (tuned / "untuned").exists()
    assert (layout.as_untuned().history("rnn", SEED)).exists()


def test_the_report_sets_tuned_against_untuned_and_says_if_the_verdict_changed(compared):
    reports = compared / "reports"
    text = (reports / "comparison.md").read_text()
    section = text[text.index("### Tuning"):text.index("by length")]
    summary = json.loads((reports / "summary.json").read_text())["tasks"][TASK]
    tuning = summary["tuning"]
    assert tuning["trials"] == 3 and set(tuning["cells"]) == {"rnn", "lstm", "gru"}
    assert "Every cell got the same budget: 3 trials" in section
    for cell, name in (("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")):
        row = tuning["cells"][cell]
        assert row["trials"] == 3 and row["tuned_accuracy"] == summary["cells"][cell]["accuracy"]
        untuned = json.loads((compared / "metrics" / TASK / "test" /
                              f"{cell}-seed{SEED}-untuned.json").read_text())
        assert row["untuned_accuracy"] == untuned["accuracy"]
        assert re.search(rf"\| {name} \| 3 \(\d\) \| ", section)
        assert f"- {name} (trial {row['best_trial']}): " in section
    def groups(letters: dict[str, str]) -> set[frozenset[str]]:
        return {frozenset(c for c, ls in letters.items() if x in ls)
                for x in "".join(letters.values())}

    differ = groups(tuning["untuned_groups"]) != groups(summary["groups"])
    assert tuning["verdicts_differ"] == differ
    # changed: the verdicts differ and some cell's change was tested significant
    moved = any(c["p"] < 0.05 for c in tuning["cells"].values())
    assert tuning["verdict_changed"] == (differ and moved)
    said = ("Tuning changed the verdict" if tuning["verdict_changed"] else
            "no evidence that tuning changed the ranking" if differ else
            "Tuning did not change the verdict")
    assert said in text.splitlines()[4]  # the verdict at the top says it
    assert said in section and "Holm-adjusted over the cells" in section
    # the figure shows only importances that beat their permutation test
    if any(row["importance"] and (row["importance_p"] or 1) < 0.05
           for row in tuning["cells"].values()):
        assert "![hyperparameter importance](figures/sentiment_tuning.png)" in section
        assert (reports / "figures" / "sentiment_tuning.png").stat().st_size > 0
    else:
        assert "No hyperparameter importance" in section
        assert "hyperparameter importance](" not in section
    html = (reports / "comparison.html").read_text()
    assert "Tuning" in html


def test_tuning_off_writes_a_record_that_training_ignores(prepared, tmp_path):
    folder = copy_prepared(prepared, tmp_path)
    params, layout = load_task(folder)
    record = tune_cell(params, "lstm", layout)
    assert not record.enabled and record.settings == {}
    assert json.loads(layout.tuning("lstm").read_text())["enabled"] is False
    # the untuned twin's stage writes only a note that there is none
    from pipeline.tuning.fits import NO_TWIN, train_untuned

    assert train_untuned(params, "lstm", layout, SEED) is None
    twin = layout.as_untuned().model_dir("lstm", SEED)
    assert [p.name for p in twin.iterdir()] == [NO_TWIN]
    assert json.loads((twin / NO_TWIN).read_text())["fitted"] is False
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from pipeline.tuning.tune import tune_cell; "
         "from pipeline.tuning.fits import train_untuned; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"


def test_an_untuned_twin_without_tuning_is_refused_in_one_line(prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(copy_prepared(prepared, tmp_path))
    result = CliRunner().invoke(app, ["train", "lstm", "--untuned"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: --untuned: task {TASK} has no untuned twin "
                                     "(tune.enabled: false); without --untuned it trains at "
                                     "its settings")
    assert not (tmp_path / "models").exists()


def load_trials(folder: Path, every: bool = False) -> list[optuna.trial.FrozenTrial]:
    """The rnn study's finished trials (`every`: the interrupted ones too), as its storage
    holds them (none before it exists)."""
    dbs = list((folder / ".rnnbench" / "tuning").glob(f"{TASK}-rnn-*.db"))
    summaries = optuna.get_all_study_summaries(f"sqlite:///{dbs[0]}") if dbs else []
    if not summaries:
        return []
    study = optuna.load_study(study_name=summaries[0].study_name, storage=f"sqlite:///{dbs[0]}")
    return [t for t in study.trials if every
            or t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def finished_trials(folder: Path) -> list[tuple[int, float]]:
    return [(t.number, t.value) for t in load_trials(folder)]


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
    assert proc.returncode == 130 and "Traceback" not in out, out
    before = finished_trials(folder)
    assert 1 <= len(before) < 4
    assert not (folder / "metrics" / TASK / "tuning" / "rnn.json").exists()
    rerun = subprocess.run(stage, cwd=folder, env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = finished_trials(folder)
    assert len(after) == 4 and after[: len(before)] == before  # kept, not run again
    drawn = [tuple(sorted(t.params.items())) for t in load_trials(folder, every=True)]
    assert len(set(drawn)) == len(drawn)  # the resumed sampler did not repeat earlier draws
    ran = [int(n) for n in re.findall(r"rnn trial (\d+):", rerun.stderr)]
    assert len(ran) == 4 - len(before) and min(ran) > before[-1][0]  # only what was missing
    assert read_tuning(folder / "metrics" / TASK / "tuning" / "rnn.json").trials == 4


def test_the_record_holds_the_budget_only_and_fanova_finds_the_setting_that_matters(tmp_path):
    from pipeline.report.figures import plot_importance
    from pipeline.tuning.study import importance_test, summarize

    space = {"train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
             "model.dropout": optuna.distributions.FloatDistribution(0.0, 0.7)}
    study = optuna.create_study(direction="maximize")  # a study that once ran a larger budget
    draws = np.random.default_rng(0)
    for _ in range(40):
        lr, dropout = 10 ** draws.uniform(-4, -2), draws.uniform(0, 0.7)
        score = 0.9 - abs(np.log10(lr) + 3) / 4  # the learning rate decides, dropout not
        study.add_trial(optuna.trial.create_trial(
            params={"train.lr": lr, "model.dropout": dropout}, distributions=space, value=score))
    record = summarize(study, 30, "gru", "val_acc", space)
    assert record.trials == 30 and [t.number for t in record.history] == list(range(30))
    first = study.trials[:30]
    assert record.best_trial == max(first, key=lambda t: t.value).number
    assert record.importance["train.lr"] > 0.8 > 0.2 > record.importance["model.dropout"]
    assert record.importance_p is not None and record.importance_p <= 0.05
    # the same settings with scores of pure noise: fANOVA still crowns one, the test does not
    noise = optuna.create_study(direction="maximize")
    noise.add_trials([optuna.trial.create_trial(params=t.params, distributions=space,
                                                value=float(draws.normal()))
                      for t in study.trials[:30]])
    shares, p = importance_test(noise.trials, list(space))
    assert max(shares.values()) > 0.5 and p > 0.05
    figure = tmp_path / "importance.png"
    plot_importance({"gru": record.importance, "rnn": {"train.lr": 0.5, "model.dropout": 0.5}},
                    figure)
    assert figure.stat().st_size > 5000
