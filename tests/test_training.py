"""Real short Lightning fits on the prepared sample, logged to a real MLflow sqlite store."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_params, parse_params
from pipeline.data.synthetic import generate_task
from pipeline.evaluation.evaluate import evaluate_cell
from pipeline.paths import Layout
from pipeline.report.assemble import write_report
from pipeline.tracking.store import SERVER_RETRIES
from pipeline.training.fit import resolve_device, train_cell
from pipeline.training.longrange import run_task
from tests.conftest import (
    ROOT,
    SEED,
    TASK,
    load_task,
    requires_gpu,
    tiny_params,
    write_params,
)


@pytest.fixture(scope="module")
def trained(prepared):
    params, layout = load_task(prepared)
    summaries = {cell: train_cell(params, cell, layout) for cell in params.cells}
    for cell in params.cells:
        evaluate_cell(params, cell, layout)
    everything = load_params(prepared / "params.yaml")
    for problem in everything.longrange.problems:  # the synthetic sweep, as its stages run it
        for length in everything.longrange.lengths:
            generate_task(everything, problem, length, prepared)
            for cell in everything.cells:
                run_task(everything, problem, length, prepared, cell, SEED)
    write_report(everything, prepared)
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
    assert "encoder.layers.0.0.weight_ih_l0" in state


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
        # one seed: the interval comes from resampling the test examples
        low, high = summary["cells"][cell]["accuracy_ci95"]
        assert low < metrics["accuracy"] < high and high - low < 0.5
        assert summary["cells"][cell]["accuracy_ci95_over"] == "test examples"
        assert f"[{low:.2%}, {high:.2%}] |" in text
    assert "accuracy: 95% CI (test sample)" in text
    assert (layout.reports / "figures" / f"{TASK}_learning_curves.png").stat().st_size > 10_000
    # accuracy by length: quartile buckets that cover the test split, one value per cell
    lengths = summary["by_length"]
    test_size = json.loads(layout.test_metrics("rnn", SEED).read_text())["test_examples"]
    assert sum(b["examples"] for b in lengths["buckets"]) == test_size
    assert 2 <= len(lengths["buckets"]) <= 4
    assert all(len(v) == len(lengths["buckets"]) and all(0 <= x <= 1 for x in v)
               for v in lengths["cells"].values())
    assert "### Accuracy by length" in text


def test_report_has_every_section_in_order_and_the_html_opens_offline(trained):
    _params, layout, _, _ = trained
    text = (layout.reports / "comparison.md").read_text()
    sections = [f"## {TASK}:", "### Significance", "### Accuracy by length",
                "### Gradient flow through time", "### Gates", "### Learning curves",
                "### Confusion matrices", "### Per label", "### Data", "### Settings",
                "## Long-range memory: synthetic tasks", "### Gradient flow and gates: recall",
                "### Gradient flow and gates: adding", "## Provenance"]
    where = [text.find(s) for s in sections]
    assert -1 not in where and where == sorted(where), dict(zip(sections, where, strict=True))
    # verdicts first: every task's, then the synthetic sweep's
    head = text[: where[0]]
    assert f"- **{TASK}**: **" in head and "- **long range** (synthetic): solved" in head
    # per task: by length, gradient flow, gates, curves, confusions; the sweep: accuracy
    # against length, and per problem gradient flow and gates
    figures = sorted(set(re.findall(r"\]\((figures/[^)]+\.png)\)", text)))
    assert len(figures) == 5 + 1 + 2 * 2, figures
    assert all((layout.reports / f).stat().st_size > 5_000 for f in figures)
    # the replayed equations match PyTorch's kernels on the trained weights
    assert text.count("(ok) |") == 3 * 3 and "ABOVE" not in text
    # provenance: the commit (none here: not a git repo), every data hash, params.yaml itself
    assert "- Code: git commit `unknown`" in text
    for name in (TASK, "recall_6", "recall_12", "adding_6", "adding_12"):
        assert f"| {name} |" in text.split("## Provenance")[1]
    assert (layout.root / "params.yaml").read_text().strip() in text
    # the store as any clone finds it: relative to the project, never this machine's path
    assert "- Runs: MLflow store `sqlite:///mlruns/mlflow.db`" in text
    assert str(layout.root) not in text
    # the HTML opens offline: every figure embedded, nothing fetched, every section there
    html = (layout.reports / "comparison.html").read_text()
    assert html.count('src="data:image/png;base64,') == text.count("](figures/")
    assert "<table>" in html and "wins</strong>" in html
    assert not re.search(r'(src|href)="(https?:|figures/)', html) and "<script" not in html
    for s in sections:
        assert s.lstrip("#").strip().split(":")[0] in html
    # the figures' data, for `dvc plots show`
    plots = {p.name for p in (layout.reports / "plots").iterdir()}
    assert {f"{TASK}_gradient_flow.csv", f"{TASK}_by_length.csv", "longrange_recall.csv",
            "longrange_adding.csv"} <= plots
    summary = json.loads((layout.reports / "summary.json").read_text())
    assert set(summary["longrange"]["results"]) == {"recall", "adding"}
    flow = summary["tasks"][TASK]["gradient_flow"]["rnn"]
    assert flow["distance"][0] == 0 and flow["ratio"][0] == pytest.approx(1.0)


def test_training_is_deterministic_on_cpu(prepared, tmp_path):
    params, layout = load_task(prepared)
    weights = []
    for _ in range(2):
        train_cell(params, "rnn", layout)
        weights.append(torch.load(layout.model_dir("rnn", SEED) / "model.pt",
                                  weights_only=True))
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_a_setup_check_after_training_writes_nothing(trained, prepared, monkeypatch):
    _, layout, _, client = trained
    outputs = [layout.model_dir("gru", SEED) / "model.pt", layout.model_dir("gru", SEED)
               / "train.json", layout.history("gru", SEED)]
    before = [path.read_bytes() for path in outputs]
    experiment = client.get_experiment_by_name(TASK).experiment_id
    runs = len(client.search_runs([experiment]))
    monkeypatch.chdir(prepared)
    runner = CliRunner()
    result = runner.invoke(app, ["train", "gru", "--fast-dev-run"])
    assert result.exit_code == 0, result.output
    assert "setup checked" in result.output and "nothing written" in result.output
    assert [path.read_bytes() for path in outputs] == before  # the trained model survives
    assert len(client.search_runs([experiment])) == runs  # and no one-batch run joins MLflow
    result = runner.invoke(app, ["compare"])
    assert result.exit_code == 0, result.output
    assert all(cell in result.output for cell in ("rnn", "lstm", "gru"))


def test_unreachable_tracking_server_is_one_line(prepared, monkeypatch):
    monkeypatch.chdir(prepared)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: refused
    result = CliRunner().invoke(app, ["compare"])  # MLflow's own retries would take 252 s
    assert result.exit_code == 2
    assert "MLflow store http://127.0.0.1:9: cannot connect (Connection refused)" in result.output
    assert "Traceback" not in result.output


def test_a_failing_tracking_server_is_retried_within_bounds_then_one_line(prepared,
                                                                          monkeypatch):
    from tests.httpserver import FileServer

    monkeypatch.chdir(prepared)
    for name in SERVER_RETRIES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    with FileServer() as server:  # answers 500 to everything MLflow asks
        lookup = f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={TASK}"
        server.fail_first[lookup] = 100
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        result = CliRunner().invoke(app, ["compare"])
    assert result.exit_code == 2, result.output
    assert f"MLflow store {server.url}: looking up the experiment failed" in result.output
    assert "Traceback" not in result.output
    assert len(server.requests) == 1 + int(SERVER_RETRIES["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])


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
    shutil.copytree(prepared / "data" / TASK, tmp_path / "data" / TASK)  # not the sweep
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
        assert low <= c["accuracy"] <= high and c["accuracy_ci95_over"] == "seeds"
    (comparison,) = summary["comparisons"]
    assert 0 <= comparison["p"] <= 1 and comparison["method"] == "paired t-test over 3 seeds"


def test_training_stops_at_the_epoch_validation_reaches_stop_at(sample_wheel, tmp_path):
    """`train.stop_at`: a run ends at the first epoch whose validation accuracy reaches it
    (a solved synthetic task has nothing left to learn), long before max_epochs. On the CPU epoch
    9 scores exactly 0.2, where Lightning's own threshold (strictly above) would go on."""
    raw = tiny_params(sample_wheel)
    raw["longrange"].update(problems=["adding"], lengths=[6], examples=400, train={
        "max_epochs": 30, "patience": 30, "stop_at": 0.2, "lr": 0.01, "limit_train_batches": None})
    params = parse_params(raw)
    generate_task(params, "adding", 6, tmp_path)
    summary = train_cell(params.for_longrange("adding", 6), "lstm", Layout(tmp_path, "adding_6"))
    history = [float(row.split(",")[4]) for row in Layout(tmp_path, "adding_6").history(
        "lstm", SEED).read_text().splitlines()[1:]]
    assert summary["epochs"] == len(history) < 30
    assert history[-1] >= 0.2 and all(acc < 0.2 for acc in history[:-1]), str(history)


def training_under_way(prepared, folder, epochs=100, until="epoch 1:") -> subprocess.Popen:
    """A train stage in a copy of the prepared project, past the line `until` of its output."""
    if not (folder / "data").exists():
        shutil.copytree(prepared / "data" / TASK / "prepared",
                        folder / "data" / TASK / "prepared")
    raw = yaml.safe_load((prepared / "params.yaml").read_text())
    raw["train"].update(max_epochs=epochs, patience=100)
    write_params(folder, raw)
    # Ctrl-C as at a terminal, even where the tests were started with SIGINT ignored (a
    # background job of a script), which Python would pass on to the stage as ignored.
    proc = subprocess.Popen([sys.executable, "-m", "stages.train", TASK, "rnn", str(SEED)],
                            cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith(until):
            return proc
    raise AssertionError(f"training never got to {until!r} (exit {proc.wait()})")


def finish(proc: subprocess.Popen) -> str:
    rest = proc.stderr.read() if proc.stderr else ""
    assert proc.wait(timeout=300) == 0, rest
    return rest


def cell_runs(folder):
    client = MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name(TASK).experiment_id],
                              "tags.`rnnbench.kind` = 'cell'", order_by=["attributes.start_time"])


def test_ctrl_c_during_training_exits_130_and_marks_the_run_killed(prepared, tmp_path):
    folder = tmp_path / "project"
    proc = training_under_way(prepared, folder)
    proc.send_signal(signal.SIGINT)  # a real signal, once training is under way
    rest, code = proc.stderr.read(), proc.wait(timeout=120)
    assert code == 130, rest
    assert rest.strip().endswith("interrupted") and "Traceback" not in rest
    assert not Layout(folder, TASK).model_dir("rnn", SEED).exists()  # nothing half-written
    assert [run.info.status for run in cell_runs(folder)] == ["KILLED"]


def test_a_run_killed_hard_is_ended_and_cleaned_by_the_next(prepared, tmp_path):
    folder = tmp_path / "project"
    proc = training_under_way(prepared, folder, until="epoch 2:")  # epoch 1 checkpointed
    proc.kill()  # SIGKILL: no handler runs, the run stays RUNNING, the checkpoints stay
    proc.wait(timeout=60)
    assert [run.info.status for run in cell_runs(folder)] == ["RUNNING"]
    assert len(list((folder / ".rnnbench" / "fits").iterdir())) == 1
    finish(training_under_way(prepared, folder, epochs=2, until="epoch 2:"))  # other inputs
    assert [run.info.status for run in cell_runs(folder)] == ["KILLED", "FINISHED"]
    assert cell_runs(folder)[0].data.tags["rnnbench.ended"] == "its process died (found later)"
    assert not list((folder / ".rnnbench" / "fits").iterdir())  # its checkpoints went too


def test_a_killed_training_resumes_to_the_weights_of_an_uninterrupted_one(prepared, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    finish(training_under_way(prepared, whole, epochs=6, until="epoch 1:"))
    proc = training_under_way(prepared, resumed, epochs=6, until="epoch 2:")
    proc.kill()
    proc.wait(timeout=60)
    rerun = subprocess.run([sys.executable, "-m", "stages.train", TASK, "rnn", str(SEED)],
                           cwd=resumed, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert re.search(r"resuming after epoch [1-5] from its checkpoint", rerun.stderr)
    model = [torch.load(Layout(f, TASK).model_dir("rnn", SEED) / "model.pt", weights_only=True)
             for f in (whole, resumed)]
    assert model[0].keys() == model[1].keys()
    assert all(torch.equal(model[0][k], model[1][k]) for k in model[0])
    history = [Layout(f, TASK).history("rnn", SEED).read_text().splitlines() for f in (whole,
                                                                                         resumed)]
    assert [row.rsplit(",", 1)[0] for row in history[0]] == [
        row.rsplit(",", 1)[0] for row in history[1]]  # every epoch's metrics (not its time)
    assert not list((resumed / ".rnnbench" / "fits").iterdir())


def make_read_only(paths: list) -> list:
    """Make files and folders unwritable, even for root (whom file modes do not bind): chmod,
    and as root the immutable attribute. Returns the undo commands."""
    undo = []
    for path in paths:
        if os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(
                    ["chattr", "+i", str(path)], capture_output=True).returncode != 0:
                pytest.skip("running as root without chattr +i: cannot make a store read-only")
            undo.append(["chattr", "-i", str(path)])
        else:
            mode = path.stat().st_mode
            path.chmod(mode & 0o555)
            undo.append((path, mode))
    return undo


def test_a_read_only_store_fails_in_one_line_before_training(trained, prepared, monkeypatch):
    store = prepared / "mlruns"
    undo = make_read_only([store / "mlflow.db", store])
    try:
        monkeypatch.chdir(prepared)
        result = CliRunner().invoke(app, ["train", "lstm"])
    finally:
        for step in undo:
            if isinstance(step, tuple):
                step[0].chmod(step[1])
            else:
                subprocess.run(step, check=True)
    assert result.exit_code == 2, result.output
    assert re.search(r"MLflow store sqlite:///\S+mlflow.db: (opening the store|starting the run) "
                     r"failed: .*(readonly|read-only|unable to open)", result.output), result.output
    assert "Traceback" not in result.output


def test_training_before_prepare_names_the_missing_step(tmp_path, monkeypatch, sample_wheel):
    write_params(tmp_path, tiny_params(sample_wheel))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "lstm"])
    assert result.exit_code == 2
    assert f"data/{TASK}/prepared: no prepared data; run the stages before" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("params", "nosuch://x", "MLflow store nosuch://x: opening the store failed"),
    ("env", "sqlite:////dev/null/mlflow.db",
     "MLflow store sqlite:////dev/null/mlflow.db: opening the store failed"),
])
def test_an_unusable_store_fails_in_one_line_before_training(prepared, tmp_path, monkeypatch,
                                                             setting, value, message):
    shutil.copytree(prepared / "data" / TASK / "prepared", tmp_path / "data" / TASK / "prepared")
    raw = yaml.safe_load((prepared / "params.yaml").read_text())
    if setting == "params":
        raw["tracking"]["uri"] = value
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", value)
    write_params(tmp_path, raw)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "rnn"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "models").exists()
