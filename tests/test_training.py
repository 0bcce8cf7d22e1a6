"""Real short Lightning fits on the prepared sample, logged to a real MLflow sqlite store."""

import json
import re
import shutil

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_params
from pipeline.evaluation import evaluate_cell
from pipeline.reporting import write_report
from pipeline.training import resolve_device, train_cell
from tests.conftest import SEED, TASK, load_task, requires_gpu, write_params


@pytest.fixture(scope="module")
def trained(prepared):
    params, layout = load_task(prepared)
    summaries = {cell: train_cell(params, cell, layout) for cell in params.cells}
    for cell in params.cells:
        evaluate_cell(params, cell, layout)
    write_report(load_params(prepared / "params.yaml"), prepared)
    client = MlflowClient(f"sqlite:///{prepared / 'mlruns' / 'mlflow.db'}")
    return params, layout, summaries, client


def test_one_run_per_cell_nested_under_one_comparison(trained):
    params, _, summaries, client = trained
    exp = client.get_experiment_by_name(TASK)  # one experiment per task
    runs = client.search_runs([exp.experiment_id], "tags.`rnnbench.kind` = 'cell'")
    assert sorted(r.data.tags["rnnbench.cell"] for r in runs) == sorted(params.cells)
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1
    parent = client.get_run(parents.pop())
    assert parent.data.tags["rnnbench.kind"] == "comparison"
    assert "report/comparison.md" in {a.path for a in client.list_artifacts(
        parent.info.run_id, "report")}
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"test_accuracy", "test_macro_f1", "train_loss", "val_acc"} <= set(run.data.metrics)
        assert run.data.params["model.hidden_size"] == "16"
        assert run.data.tags["mlflow.source.git.commit"]
        assert run.data.tags["rnnbench.task"] == TASK
        assert run.data.tags["rnnbench.data_hash"] == summaries["gru"]["data_hash"]
        assert run.inputs.dataset_inputs[0].dataset.name == "rotten_tomatoes"
        assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {
            "model/model.pt", "model/vocab.json"}


def test_per_epoch_metrics_are_logged_with_epoch_steps(trained):
    _, layout, summaries, client = trained
    history = client.get_metric_history(summaries["lstm"]["run_id"], "val_acc")
    assert [m.step for m in history] == [1]
    assert layout.history("lstm", SEED).read_text().splitlines()[0].startswith("epoch,train_loss")


def test_checkpoint_loads_with_weights_only(trained):
    _, layout, _, _ = trained
    state = torch.load(layout.model_dir("gru", SEED) / "model.pt", weights_only=True)
    assert "encoder.rnn.weight_ih_l0" in state


def test_report_and_metrics_cover_every_cell(trained):
    params, layout, _, _ = trained
    text = (layout.reports / "comparison.md").read_text()
    for name in ("RNN", "LSTM", "GRU"):
        assert f"| {name} |" in text
    assert "wins** on test accuracy" in text
    summary = json.loads((layout.reports / "summary.json").read_text())["tasks"][TASK]
    assert set(summary["cells"]) == set(params.cells) and summary["family"] == "classification"
    for cell in params.cells:
        metrics = json.loads(layout.test_metrics(cell, SEED).read_text())
        assert 0 <= metrics["accuracy"] <= 1 and metrics["num_parameters"] > 0
    assert (layout.reports / "figures" / f"{TASK}_learning_curves.png").stat().st_size > 10_000
    # accuracy by length: quartile buckets that cover the test split, one value per cell
    lengths = summary["by_length"]
    test_size = json.loads(layout.test_metrics("rnn", SEED).read_text())["test_examples"]
    assert sum(b["examples"] for b in lengths["buckets"]) == test_size
    assert 2 <= len(lengths["buckets"]) <= 4
    assert all(len(v) == len(lengths["buckets"]) and all(0 <= x <= 1 for x in v)
               for v in lengths["cells"].values())
    assert "### Accuracy by length" in text
    # the HTML report opens offline: every figure embedded, nothing fetched
    html = (layout.reports / "comparison.html").read_text()
    figures = text.count("](figures/")
    assert figures == 3 and html.count('src="data:image/png;base64,') == figures
    assert "<table>" in html and "<h2>" in html and "wins</strong>" in html
    assert not re.search(r'(src|href)="(https?:|figures/)', html) and "<script" not in html


def test_training_is_deterministic_on_cpu(prepared, tmp_path):
    params, layout = load_task(prepared)
    weights = []
    for _ in range(2):
        train_cell(params, "rnn", layout)
        weights.append(torch.load(layout.model_dir("rnn", SEED) / "model.pt",
                                  weights_only=True))
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_cli_fast_dev_run_and_compare(prepared, monkeypatch):
    monkeypatch.chdir(prepared)
    runner = CliRunner()
    result = runner.invoke(app, ["train", "gru", "--fast-dev-run"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["compare"])
    assert result.exit_code == 0, result.output
    assert all(cell in result.output for cell in ("rnn", "lstm", "gru"))


def test_unreachable_tracking_server_is_one_line(prepared, monkeypatch):
    monkeypatch.chdir(prepared)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    result = CliRunner().invoke(app, ["compare"])
    assert result.exit_code == 2
    assert "MLflow store http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


def test_cpu_uses_full_precision():
    params = load_params("params.yaml")
    if not torch.cuda.is_available():
        assert resolve_device(params.train) == ("cpu", "32-true")


@requires_gpu
@pytest.mark.gpu
def test_gpu_uses_bf16_when_available():
    params = load_params("params.yaml")
    accelerator, precision = resolve_device(params.train)
    assert accelerator == "gpu"
    assert precision == ("bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true")


def test_several_seeds_give_intervals_and_tests_over_seeds(prepared, tmp_path):
    shutil.copytree(prepared / "data", tmp_path / "data")
    raw = yaml.safe_load((prepared / "params.yaml").read_text())
    raw.update(cells=["rnn", "gru"], seeds=[1, 2, 3])
    write_params(tmp_path, raw)
    params, layout = load_task(tmp_path)
    for cell in params.cells:
        for seed in params.seeds:
            train_cell(params, cell, layout, seed)
            evaluate_cell(params, cell, layout, seed)
    write_report(load_params(tmp_path / "params.yaml"), tmp_path)
    text = (layout.reports / "comparison.md").read_text()
    assert "accuracy: mean ± sd [95% CI]" in text and "(mean of 3 seeds)" in text
    assert "paired t-test over 3 seeds" in text
    summary = json.loads((layout.reports / "summary.json").read_text())["tasks"][TASK]
    for cell in ("rnn", "gru"):
        c = summary["cells"][cell]
        assert set(c["seeds"]) == {"1", "2", "3"}
        values = [c["seeds"][s]["accuracy"] for s in ("1", "2", "3")]
        assert c["accuracy"] == pytest.approx(sum(values) / 3)
        low, high = c["accuracy_ci95"]
        assert low <= c["accuracy"] <= high
    (comparison,) = summary["comparisons"]
    assert 0 <= comparison["p"] <= 1 and comparison["method"] == "paired t-test over 3 seeds"
