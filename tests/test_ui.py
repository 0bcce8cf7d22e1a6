"""`rnnbench ui` serves the project's store; the same server works as a remote tracking URI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.model.record import read_record
from pipeline.training.fit import train_cell
from tests.conftest import SEED, TASK, copy_prepared, load_task
from tests.servers import free_port

pytestmark = pytest.mark.slow


def api(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def cell_runs(base: str) -> list[dict]:
    exp = api(base, f"experiments/get-by-name?experiment_name={TASK}")["experiment"]
    found = api(base, "runs/search", {"experiment_ids": [exp["experiment_id"]],
                                      "filter": "tags.`rnnbench.kind` = 'cell'"})
    return found.get("runs", [])


@pytest.fixture(scope="module")
def project(prepared, tmp_path_factory):
    """The UI's own project: these tests train into it, the shared trained models stay."""
    return copy_prepared(prepared, tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def server(project):
    params, layout = load_task(project)
    train_cell(params, "gru", layout)
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "rnnbench"), "ui", "--port", str(port)],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"rnnbench ui exited: {proc.stdout.read().decode()[-2000:]}")
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("rnnbench ui did not answer /health within 90 s")
    yield base
    os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers share the session
    proc.wait(timeout=30)


def test_ui_serves_the_project_runs(server):
    runs = cell_runs(server)
    cells = {t["value"] for r in runs for t in r["data"]["tags"] if t["key"] == "rnnbench.cell"}
    assert "gru" in cells


def test_remote_tracking_server_receives_runs(server, project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    before = len(cell_runs(server))
    params, layout = load_task(project)
    record = train_cell(params, "lstm", layout)
    assert record.tracking_uri == server
    assert len(cell_runs(server)) == before + 1
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["compare"])
    assert result.exit_code == 0, result.output
    assert "lstm" in result.output


def test_ui_refuses_a_busy_port(server, project, monkeypatch):
    monkeypatch.chdir(project)
    port = server.rsplit(":", 1)[1]
    result = CliRunner().invoke(app, ["ui", "--port", port])
    assert result.exit_code == 2
    assert f"--port {port}: already in use" in result.output
    # before serving: a link per task to the comparison of its trained models' runs
    _, layout = load_task(project)
    record = read_record(layout.model_dir("gru", SEED))
    link = next(line for line in result.output.splitlines() if line.startswith(f"{TASK}: "))
    assert f"http://127.0.0.1:{port}/#/compare-runs?runs=" in link and record.run_id in link


def test_experiments_open_on_their_runs_in_the_ui(server):
    """Tagged as model development: MLflow 3's UI otherwise guessed a GenAI experiment."""
    exp = api(server, f"experiments/get-by-name?experiment_name={TASK}")["experiment"]
    tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
