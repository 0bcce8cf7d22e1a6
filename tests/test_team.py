"""The team setup: `rnnbench server` on a real PostgreSQL with proxied artifacts and basic auth,
and workers that start at the same moment landing in one comparison."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
import yaml

from tests.conftest import TASK, repo_params
from tests.postgres import PASSWORD, postgres_server
from tests.servers import free_port, serving

pytestmark = pytest.mark.slow
RNNBENCH = str(Path(sys.executable).parent / "rnnbench")
ADMIN = ("admin", "admin-pass-for-tests-1")


@pytest.fixture(scope="module")
def database():
    with postgres_server() as pg:
        yield pg


def project(folder: Path, pg, port: int, auth: bool) -> Path:
    raw = repo_params()
    raw["tracking"]["server"] = {"backend_store": pg.uri, "artifacts": "team-artifacts",
                                 "host": "127.0.0.1", "port": port, "workers": 1, "auth": auth}
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder / "params.yaml"


def api(base: str, path: str, body: dict | None = None, user: tuple[str, str] | None = None
        ) -> dict:
    headers = {"Content-Type": "application/json"}
    if user:
        headers["Authorization"] = "Basic " + b64encode(":".join(user).encode()).decode()
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def rnnbench(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([RNNBENCH, *args], cwd=cwd, capture_output=True, text=True,
                          env={**env, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
                          timeout=120)


def test_server_on_postgres_with_auth_refuses_strangers_and_keeps_secrets(database, tmp_path):
    port = free_port()
    params = project(tmp_path, database, port, auth=True)
    env = {"PGPASSWORD": PASSWORD, "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
           "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "HOME": str(tmp_path)}
    base = f"http://127.0.0.1:{port}"
    with serving([RNNBENCH, "server", "--params", str(params)], f"{base}/health",
                 cwd=tmp_path, env=env) as server:
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(base, "experiments/search", {"max_results": 1})
        assert refused.value.code == 401
        # rnnbench's own tracking code, as a worker runs it, with the admin's credentials
        client = {"MLFLOW_TRACKING_URI": base, "MLFLOW_TRACKING_USERNAME": ADMIN[0],
                  "MLFLOW_TRACKING_PASSWORD": ADMIN[1], "HOME": str(tmp_path)}
        code = ("from pathlib import Path; from pipeline import tracking; "
                "from pipeline.config import load_params; "
                f"tp = load_params(Path('{params}')).for_task('{TASK}'); "
                "c, run, parent = tracking.start_cell_run("
                "tp, tp.for_cell('gru', 1), 'ab' * 32, Path('.'), {}); "
                "Path('note.txt').write_text('kept'); "
                "tracking.log_files(c, run, [(Path('note.txt'), 'notes')]); "
                "tracking.end_run(c, run, 'FINISHED'); print(run)")
        ok = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**env, **client,
                                                         "PYTHONPATH": str(Path.cwd())})
        assert ok.returncode == 0, ok.stderr
        run = ok.stdout.strip().splitlines()[-1]
        got = api(base, f"runs/get?run_id={run}", user=ADMIN)["run"]
        assert got["info"]["status"] == "FINISHED"
        # a new user (default permission READ) reads the team's runs and changes none of them;
        # MLflow lets any user create experiments of their own, which docs/team.md says
        reader = ("reader", "reader-password-5")
        api(base, "users/create", {"username": reader[0], "password": reader[1]}, user=ADMIN)
        assert api(base, f"runs/get?run_id={run}", user=reader)["run"]["info"]["run_id"] == run
        with pytest.raises(urllib.error.HTTPError) as forbidden:
            api(base, "runs/set-tag", {"run_id": run, "key": "k", "value": "v"}, user=reader)
        assert forbidden.value.code == 403
        assert api(base, "experiments/create", {"name": "readers-own"}, user=reader)
        # the artifact went through the server into its destination folder
        assert list((tmp_path / "team-artifacts").rglob("notes/note.txt"))
        # a wrong password: one line naming what to fix, no traceback
        wrong = rnnbench("compare", "--params", str(params), "--latest", cwd=tmp_path,
                         env={**client, "MLFLOW_TRACKING_PASSWORD": "wrong"})
        assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1
        assert "MLFLOW_TRACKING_USERNAME" in wrong.stderr, wrong.stderr
        log = server.read_text(errors="replace")
    assert "MLflow tracking server on" in log and "basic auth" in log
    for secret in (PASSWORD, ADMIN[1]):
        assert secret not in log
        assert secret not in json.dumps(got)


def test_server_refuses_a_wrong_database_password_in_one_line(database, tmp_path):
    params = project(tmp_path, database, free_port(), auth=False)
    out = rnnbench("server", "--params", str(params), cwd=tmp_path,
                   env={"PGPASSWORD": "not-the-password", "HOME": str(tmp_path)})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: tracking.server.backend_store postgresql://rnnbench@")
    assert "password authentication failed" in out.stderr and "not-the-password" not in out.stderr


WORKER = """
import sys, time
from pathlib import Path
from pipeline import tracking
from pipeline.config import load_params
params, cell, seed, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
tp = load_params(Path(params)).for_task("{task}")
Path(ready).touch()
while not Path(go).exists():  # every worker has imported everything: start together
    time.sleep(0.005)
cp = tp.for_cell(cell, seed)
client, run, parent = tracking.start_cell_run(tp, cp, "cd" * 32, Path("."), {{}})
tracking.end_run(client, run, "FINISHED")
"""


def test_workers_starting_at_once_make_one_experiment_and_one_comparison(database, tmp_path):
    """Six workers (three cells, two seeds) call rnnbench's run setup at the same moment
    against the PostgreSQL-backed server, into an experiment that does not exist yet."""
    port = free_port()
    params = project(tmp_path, database, port, auth=False)
    raw = yaml.safe_load(params.read_text())
    raw["tracking"]["experiment"] = experiment = f"race-{port}"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    base = f"http://127.0.0.1:{port}"
    env = {"PGPASSWORD": PASSWORD, "HOME": str(tmp_path)}
    jobs = [(cell, seed) for cell in ("rnn", "lstm", "gru") for seed in (1, 2)]
    with serving([RNNBENCH, "server", "--params", str(params)], f"{base}/health",
                 cwd=tmp_path, env=env):
        go = tmp_path / "go"
        workers = [subprocess.Popen(
            [sys.executable, "-c", WORKER.format(task=TASK), str(params), cell, str(seed),
             str(tmp_path / f"ready-{cell}-{seed}"), str(go)], cwd=tmp_path,
            env={**env, "MLFLOW_TRACKING_URI": base, "PYTHONPATH": str(Path.cwd()),
                 "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
            stderr=subprocess.PIPE, text=True) for cell, seed in jobs]
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("ready-*"))) < len(jobs) and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()
        errors = [w.communicate(timeout=120)[1] for w in workers]
        assert [w.returncode for w in workers] == [0] * len(jobs), errors
        found = api(base, "experiments/search", {"max_results": 100})["experiments"]
        assert [e["name"] for e in found].count(experiment) == 1
        exp = next(e["experiment_id"] for e in found if e["name"] == experiment)
        runs = api(base, "runs/search", {"experiment_ids": [exp], "max_results": 100})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
        parents = [r["info"]["run_id"] for r, t in zip(runs, tags, strict=True)
                   if t.get("rnnbench.kind") == "comparison"]
        cells = sorted((t["rnnbench.cell"], t["rnnbench.seed"], t["mlflow.parentRunId"])
                       for t in tags if t.get("rnnbench.kind") == "cell")
        assert len(parents) == 1, f"{len(parents)} comparison runs"
        assert cells == sorted((c, str(s), parents[0]) for c, s in jobs)
        # the claim that made it exactly once is gone from the experiments' list
        assert not [e for e in found if e["name"].startswith("rnnbench-claims/")]
