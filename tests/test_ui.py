"""`rnnbench ui` serves the project's store; the same server works as a remote tracking URI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.model.record import read_record
from pipeline.tuning import fits
from tests.conftest import SEED, TASK, copy_prepared, load_task
from tests.servers import free_port, serving

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
def ui(project):
    """`rnnbench ui` serving the project's store: its URL, and the file its output goes to."""
    params, layout = load_task(project)
    fits.train(params, "gru", layout)
    port = free_port()
    with serving([str(Path(sys.executable).parent / "rnnbench"), "ui", "--port", str(port)],
                 f"http://127.0.0.1:{port}/health", cwd=project, timeout=90) as log:
        yield f"http://127.0.0.1:{port}", log


@pytest.fixture(scope="module")
def server(ui):
    return ui[0]


def test_ui_serves_the_project_runs(server):
    runs = cell_runs(server)
    cells = {t["value"] for r in runs for t in r["data"]["tags"] if t["key"] == "rnnbench.cell"}
    assert "gru" in cells


def test_remote_tracking_server_receives_runs(server, project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    before = len(cell_runs(server))
    params, layout = load_task(project)
    record = fits.train(params, "lstm", layout)
    assert record.tracking_uri == server
    assert len(cell_runs(server)) == before + 1
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["compare"])
    assert result.exit_code == 0, result.output
    assert "lstm" in result.output


def test_ui_links_each_task_to_the_comparison_of_its_trained_models(ui, project):
    """Printed before serving: a link per task to the comparison of its trained models' runs."""
    base, log = ui
    record = read_record(load_task(project)[1].model_dir("gru", SEED))
    link = next(line for line in log.read_text().splitlines() if line.startswith(f"{TASK}: "))
    assert f"{base}/#/compare-runs?runs=" in link and record.run_id in link


def test_the_printed_link_shows_the_cell_runs_side_by_side_in_a_browser(ui, project, browser):
    """The links `rnnbench ui` prints, opened in Chromium: MLflow's compare page renders the
    task's trained cells' runs by name; the experiment's page opens on its runs (its runs
    table names them), not on MLflow 3's GenAI overview, where it opened without the
    link's workflow (its experimentKind tag notwithstanding)."""
    base, log = ui
    line = next(line for line in log.read_text().splitlines() if line.startswith(f"{TASK}: "))
    link = re.search(r"https?://\S+", line).group(0)
    name = f"{TASK}/gru/seed{SEED}"
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    try:
        shown = page.get_by_text(name).locator("visible=true").first  # not a hidden tooltip
        page.goto(link, wait_until="load")
        shown.wait_for(timeout=60_000)
        assert "compare-runs" in page.url
        runs = next(line for line in log.read_text().splitlines()
                    if line.startswith(f"{TASK} runs: ")).split(": ", 1)[1]
        # the cell runs sit under their comparison run, the runs table's top row
        cell = next(r for r in cell_runs(base) if r["info"]["run_name"] == name)
        parent = {t["key"]: t["value"] for t in cell["data"]["tags"]}["mlflow.parentRunId"]
        top = api(base, f"runs/get?run_id={parent}")["run"]["info"]["run_name"]
        page.goto(runs, wait_until="load")
        page.get_by_text(top).locator("visible=true").first.wait_for(timeout=60_000)
        assert "/runs" in page.url and "overview" not in page.url.lower(), page.url
        shot = project / "mlflow-ui-experiment.png"
        page.screenshot(path=shot)
    finally:
        page.close()
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "mlflow-ui-experiment.png").write_bytes(shot.read_bytes())


def test_ui_refuses_a_busy_port_before_loading_mlflow(server, project):
    """At once: MLflow's import and the store's opening took 6-8 s before the port was
    looked at."""
    port = server.rsplit(":", 1)[1]
    code = ("import sys\nfrom pipeline.cli import app\ntry:\n    app(['ui', '--port', sys.argv[1]])"
            "\nexcept SystemExit as end:\n    print(end.code, 'mlflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, port], cwd=project, capture_output=True,
                         text=True, timeout=120)
    assert out.stderr.strip() == (f"error: --port {port}: already in use on 127.0.0.1; "
                                  "choose another port")
    assert out.stdout.split() == ["2", "False"]  # exit 2, and MLflow never imported


def test_experiments_open_on_their_runs_in_the_ui(server):
    """Tagged as model development: MLflow 3's UI otherwise guessed a GenAI experiment."""
    exp = api(server, f"experiments/get-by-name?experiment_name={TASK}")["experiment"]
    tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_against_another_store_ui_prints_no_dead_link_and_compare_points_to_latest(
        ui, project, tmp_path, monkeypatch):
    """The workspace's models were trained into the project's store; pointed at another (a
    team's, say) that has the task's experiment but none of those runs, `ui` linked to runs
    it did not hold and `compare` failed with "Run ... not found"."""
    from mlflow.tracking import MlflowClient

    other = f"sqlite:///{tmp_path / 'other.db'}"
    MlflowClient(other).create_experiment(TASK)
    port = free_port()
    with serving([str(Path(sys.executable).parent / "rnnbench"), "ui", "--port", str(port)],
                 f"http://127.0.0.1:{port}/health", cwd=project, timeout=90,
                 env={"MLFLOW_TRACKING_URI": other}) as log:
        printed = log.read_text()
    assert "compare-runs" not in printed
    assert f"{TASK}: this workspace's models were trained against another store" in printed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["compare"])
    assert result.exit_code == 2 and "not found" not in result.output
    assert "`--latest` shows this store's newest comparison" in result.output
