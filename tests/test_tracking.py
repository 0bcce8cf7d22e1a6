"""MLflow tracking with a real sqlite store and real HTTP servers: runs nested per
comparison, per-epoch metrics, and unreachable, failing, read-only or unusable stores as one
line before any training."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import COMPARE_COLUMNS, app, compare_cells
from pipeline.tracking.store import SERVER_RETRIES, store_errors
from tests.conftest import SEED, TASK, write_params


def test_one_run_per_cell_nested_under_one_comparison(trained):
    params, _, records, client = trained
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
        assert run.data.tags["rnnbench.data_hash"] == records["gru"].data_hash
        assert run.inputs.dataset_inputs[0].dataset.name == "rotten_tomatoes"
        assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {
            "model/MLmodel", "model/artifacts", "model/input_example.json"}  # an MLflow Model
        cell_folder = client.list_artifacts(run.info.run_id, "model/artifacts")[0].path
        assert {Path(a.path).name for a in client.list_artifacts(run.info.run_id, cell_folder)
                } == {"model.pt", "train.json", "vocab.json", "seen.json"}


def test_per_epoch_metrics_are_logged_with_epoch_steps(trained):
    _, layout, records, client = trained
    history = client.get_metric_history(records["lstm"].run_id, "val_acc")
    assert [m.step for m in history] == [1]
    assert layout.history("lstm", SEED).read_text().splitlines()[0].startswith("epoch,train_loss")


def test_unreachable_tracking_server_is_one_line(prepared, monkeypatch):
    monkeypatch.chdir(prepared)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: refused
    result = CliRunner().invoke(app, ["compare"])  # MLflow's own retries would take 252 s
    assert result.exit_code == 2
    assert "MLflow store http://127.0.0.1:9: cannot connect (Connection refused)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
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


def test_ctrl_c_waits_for_a_call_on_the_local_store(tmp_path):
    """SIGINT inside a sqlite store's call is held until the call is done, so an interrupted
    fit can still mark its run KILLED (an interrupt inside MLflow's transaction left the
    database locked); on a server's store the call stays interruptible."""
    # Ctrl-C's own meaning, even where the suite runs with SIGINT ignored (a background job)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = []
    try:
        with (pytest.raises(KeyboardInterrupt),
              store_errors(f"sqlite:///{tmp_path / 'mlflow.db'}", "a call")):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # Python would raise here, were the signal not held
            finished.append("local")
        with pytest.raises(KeyboardInterrupt), store_errors("http://127.0.0.1:9", "a call"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            finished.append("server")
    finally:
        signal.signal(signal.SIGINT, before)
    assert finished == ["local"]


def test_only_changes_outside_the_pipelines_outputs_make_the_code_dirty(tmp_path):
    """A run rewrites dvc.lock, metrics/ and reports/: that alone is not uncommitted code."""
    from pipeline.tracking import git_info

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for folder in ("metrics", "reports"):
        (tmp_path / folder).mkdir()
    files = ("dvc.lock", "metrics/m.json", "reports/r.md", "params.yaml")
    for name in files:
        (tmp_path / name).write_text("1")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "x")
    for name in files[:3]:
        (tmp_path / name).write_text("2")
    assert git_info(tmp_path)["dirty"] == "false"
    (tmp_path / "params.yaml").write_text("2")
    assert git_info(tmp_path)["dirty"] == "true"


OPEN_STORE = """
import sys, time
from pathlib import Path
from pipeline.config import load_params
from pipeline.tracking.store import client_for
params, go = load_params(Path(sys.argv[1])), float(sys.argv[2])
time.sleep(max(0.0, go - time.time()))
client_for(params, Path(sys.argv[3])).search_experiments()
"""


@pytest.mark.slow
def test_stages_side_by_side_open_a_new_local_store_at_once(tmp_path):
    """`rnnbench repro` starts fits together: each opens (and would create) the same new
    sqlite store. Without the lock in client_for, most of them failed."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    params = tmp_path / "params.yaml"
    shutil.copy("params.yaml", params)
    go = time.time() + 8  # after every process has imported MLflow
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(params), str(go),
                               str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env)
             for _ in range(4)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(outs)
    assert (tmp_path / "mlruns" / "mlflow.db").exists()


@pytest.mark.slow
def test_a_store_killed_while_being_created_opens_whole_afterwards(tmp_path):
    """SIGKILL to the process creating a new local store, at points of MLflow's ~1,700 schema
    statements (the first, a third in, the middle where MLflow's own half-made store failed
    every later run with `table _alembic_tmp_experiments already exists`, three quarters, the
    last few); then a run logged as a stage logs one. Both where rnnbench was creating it and
    where MLflow alone was (a store left half-made by an older rnnbench or another program,
    holding no run): every time, the store opens whole."""
    cases = [f"rnnbench:{n}" for n in (1, 600, 850, 1275, 1650)] + ["mlflow:850", "mlflow:1275"]
    out = subprocess.run([sys.executable, "-m", "tests.store_kills", str(tmp_path), *cases],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.splitlines()[-1])
    assert results == {case.replace(":", "-"): {"killed": True, "opened": True}
                       for case in cases}, out.stderr[-2000:]
    assert not list(tmp_path.glob("*/.mlflow.db.new*"))  # no scratch store left behind


@pytest.mark.parametrize(("logged", "shown"), [
    ({"best_val_acc": 0.7514}, "75.14%"),
    ({"best_val_entity_f1": 0.3851}, "38.51%"),  # NER's runs: it read "-" before
    ({}, "-"),
])
def test_compare_shows_each_runs_best_validation_score_whatever_its_monitor(logged, shown):
    row = {"cell": "gru", "seed": "42", "run_id": "0123456789abcdef", **logged}
    cells = dict(zip(COMPARE_COLUMNS.values(), compare_cells(row), strict=True))
    assert cells["val (best)"] == shown and cells["run"] == "0123456789ab"
