"""Scheduled retraining, round by round, as CI runs it: a git repo with a bare origin, a DVC
remote in a folder, a real MLflow tracking server on 127.0.0.1, and one task read from a
local CSV without a pinned hash (so every round re-reads it)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.retrain.promote import Decision
from pipeline.tracking.server import LEAN
from tests.conftest import ROOT, SAMPLE_CSV, SEED, TASK, tiny_params, write_params
from tests.servers import free_port, serving
from tests.test_serving import invoke

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
NAME = f"rnnbench-{TASK}"
FIRST_ROWS = 450  # of the sample's reviews; round 3 appends the rest


def sh(cwd: Path, *cmd: str, env: dict[str, str] | None = None, ok: bool = True
       ) -> subprocess.CompletedProcess:
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PATH": path, **(env or {})})
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def write_reviews(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "sentiment", "film"])
        writer.writerows((r["text"], r["category"], r["movie_name"]) for r in rows)


def reviews() -> list[dict[str, str]]:
    return [r for r in csv.DictReader(SAMPLE_CSV.open()) if r["category"] != "plot"]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    store = tmp_path_factory.mktemp("tracking-server")
    port = free_port()
    with serving([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                  "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
                  "--artifacts-destination", str(store / "artifacts"), "--workers", "1"],
                 f"http://127.0.0.1:{port}/health", env=LEAN):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, server) -> dict:
    """origin.git, a DVC remote folder, the reviews CSV and a clone to run rounds in."""
    base = tmp_path_factory.mktemp("retrain")
    data, remote, origin, work = (base / "reviews.csv", base / "dvc-remote",
                                  base / "origin.git", base / "work")
    write_reviews(data, reviews()[:FIRST_ROWS])
    sh(base, "git", "init", "-q", "--bare", str(origin))
    work.mkdir()
    for folder in ("pipeline", "stages"):
        shutil.copytree(ROOT / folder, work / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / ".dvc", work / ".dvc",
                    ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    raw = tiny_params(data)
    raw["cells"] = ["rnn", "gru"]
    raw["data"].update(dataset="csv", source={"kind": "local", "path": str(data)})
    raw["data"]["reader"].update(text_column="review", label_column="sentiment",
                                 group_column="film")
    raw["longrange"]["problems"] = []  # retraining's rounds, without the synthetic sweep
    write_params(work, raw)
    for cmd in (["git", "init", "-q", "-b", "main"],
                ["git", "config", "user.name", "rnnbench tests"],
                ["git", "config", "user.email", "tests@rnnbench.invalid"],
                ["dvc", "remote", "add", "-d", "storage", str(remote)],
                ["git", "add", "-A"], ["git", "commit", "-qm", "project"],
                ["git", "remote", "add", "origin", str(origin)],
                ["git", "push", "-q", "origin", "main"]):
        sh(work, *cmd)
    return {"base": base, "data": data, "remote": remote, "origin": origin, "work": work,
            "env": {"MLFLOW_TRACKING_URI": server}}


def retrain(s: dict) -> str:
    """One round, then what the workflow's pull request does once a person merges it."""
    out = sh(s["work"], "rnnbench", "retrain", env=s["env"])
    sh(s["work"], "git", "add", "-A")
    sh(s["work"], "git", "commit", "-qm", "retraining round", "--allow-empty")
    sh(s["work"], "git", "push", "-q", "origin", "main")
    return out.stdout + out.stderr


def versions(server: str) -> dict[str, MlflowClient]:
    client = MlflowClient(server)
    return {v.version: v for v in client.search_model_versions(f"name = '{NAME}'")}


def alias(server: str, name: str) -> str:
    return MlflowClient(server).get_model_version_by_alias(NAME, name).version


@pytest.fixture(scope="module")
def rounds(setup, server) -> dict:
    """Round 1 (first data), round 2 (nothing changed), round 3 (rows appended)."""
    logs = {1: retrain(setup)}
    logs["after1"] = {"champion": alias(server, "champion"), "versions": len(versions(server))}
    logs[2] = retrain(setup)
    logs["summary2"] = (setup["work"] / "reports" / "retrain.md").read_text()
    logs["versions2"] = len(versions(server))
    write_reviews(setup["data"], reviews())
    logs[3] = retrain(setup)
    return logs


def test_round_one_trains_pushes_and_makes_the_first_champion(rounds, setup, server):
    assert f"Running stage 'train@{TASK}-gru-{SEED}'" in rounds[1]
    assert rounds["after1"] == {"champion": "1", "versions": 1}
    tags = versions(server)["1"].tags
    assert tags["promotion"] == "first champion" and tags["cell"] in ("rnn", "gru")
    assert {"seed", "data_hash", "git_commit", "test_accuracy"} <= tags.keys()


def test_round_two_with_nothing_changed_runs_no_stage_and_registers_nothing(rounds):
    assert "nothing changed" in rounds[2]
    assert "Running stage 'prepare" not in rounds[2] and "Running stage 'train" not in rounds[2]
    assert rounds["versions2"] == 1
    assert "**Nothing changed**" in rounds["summary2"]


def test_round_three_retrains_on_new_rows_and_judges_the_challenger(rounds, setup, server):
    log = rounds[3]
    assert f"Running stage 'prepare@{TASK}'" in log and f"'train@{TASK}-rnn-{SEED}'" in log
    summary = (setup["work"] / "reports" / "retrain.md").read_text()
    assert f"| {TASK} | {FIRST_ROWS} | {len(reviews())} |" in summary
    assert "re-read, changed" in summary and "dvc metrics diff" in summary
    v2 = versions(server)["2"].tags
    assert alias(server, "challenger") == "2"
    # the champion was re-scored on the new test split and the rule applied to both scores
    # (each outcome on purpose-built models: tests/test_serving.py)
    p = float(v2["promotion.p_value"])
    gain = float(v2["promotion.challenger_score"]) - float(v2["promotion.champion_score"])
    promoted = gain > 0 and p < 0.05
    assert v2["promotion"] == ("promoted" if promoted else "kept")
    assert v2["promotion.champion_version"] == "1"
    assert alias(server, "champion") == ("2" if promoted else "1")
    assert ("promoted:" if promoted else "kept the champion (") in summary and "p = " in summary


def md5s(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_fresh_clone_pulls_the_exact_models(rounds, setup):
    clone = setup["base"] / "clone"
    sh(setup["base"], "git", "clone", "-q", "-b", "main", str(setup["origin"]), str(clone))
    sh(clone, "dvc", "pull")
    assert md5s(clone / "models") == md5s(setup["work"] / "models")
    assert "up to date" in sh(clone, "dvc", "status").stdout.lower()


def test_the_served_champion_answers_like_predict_on_every_test_example(rounds, setup,
                                                                         server):
    work = setup["work"]
    examples = work / "data" / TASK / "prepared" / "test.jsonl"
    local = sh(work, "rnnbench", "predict", "--task", TASK, "--model", "champion", "--input",
               str(examples), env=setup["env"]).stdout.splitlines()
    port = free_port()
    with serving([str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@champion",
                  "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                 f"http://127.0.0.1:{port}/ping", cwd=work, env=setup["env"]):
        served = invoke(port, [json.loads(line) for line in examples.read_text().splitlines()])
    assert [r["label"] for r in served] == [json.loads(line)["label"] for line in local]
    assert len(served) == len(local) > 50


@pytest.mark.parametrize("problem", ["dirty", "no remote", "remote unreachable",
                                     "server down"])
def test_a_round_that_cannot_run_is_one_line_and_changes_nothing(problem, rounds, setup,
                                                                  server):
    work, env = setup["work"], dict(setup["env"])
    before = len(versions(server))
    if problem == "dirty":
        (work / "params.yaml").write_text((work / "params.yaml").read_text() + "\n# edit\n")
    elif problem == "no remote":
        sh(work, "dvc", "remote", "default", "--unset")
    elif problem == "remote unreachable":  # an S3 remote whose server is not there
        sh(work, "dvc", "remote", "add", "--local", "-d", "gone", "s3://rnnbench/store")
        sh(work, "dvc", "remote", "modify", "--local", "gone", "endpointurl",
           f"http://127.0.0.1:{free_port()}")
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    else:
        env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{free_port()}"
    try:
        out = sh(work, "rnnbench", "retrain", env=env, ok=False)
    finally:
        sh(work, "git", "checkout", "--", "params.yaml", ".dvc/config")
        (work / ".dvc" / "config.local").unlink(missing_ok=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    expected = {"dirty": "uncommitted changes", "no remote": "dvc remote add",
                "remote unreachable": "dvc pull", "server down": "cannot connect"}[problem]
    assert expected in line, out.stderr
    assert len(versions(server)) == before


def test_an_s3_compatible_remote_takes_the_push_and_gives_the_pull(rounds, setup):
    """An S3 remote (moto's server on 127.0.0.1), as the retraining workflow's secrets name
    one: push from the round's clone, pull into a fresh clone, the exact models."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}
    with serving([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                 f"{endpoint}/moto-api/", env=creds):
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                     aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket="rnnbench")
        work, clone = setup["work"], setup["base"] / "s3-clone"
        sh(setup["base"], "git", "clone", "-q", "-b", "main", str(setup["origin"]), str(clone))
        for repo in (work, clone):  # local config: the remote's address stays out of git
            sh(repo, "dvc", "remote", "add", "--local", "s3", "s3://rnnbench/store")
            sh(repo, "dvc", "remote", "modify", "--local", "s3", "endpointurl", endpoint)
        sh(work, "dvc", "push", "-r", "s3", env=creds)
        sh(clone, "dvc", "pull", "-r", "s3", env=creds)
    assert md5s(clone / "models") == md5s(work / "models")
    assert "up to date" in sh(clone, "dvc", "status").stdout.lower()



def test_a_round_fanned_out_as_a_job_per_task_then_a_final_job(rounds, setup, server):
    """retrain.yml's matrix on one machine: the task's job in its own clone trains and
    pushes; the final job, in another clone, merges the job's results (what the workflow
    passes as an artifact), trains nothing itself, reports and promotes."""
    base, work = setup["base"], setup["work"]
    jobs, job_clone = base / "fanout", base / "job-clone"
    before = len(versions(server))
    write_reviews(setup["data"], reviews()[: FIRST_ROWS + 40])  # new data: the task retrains
    sh(base, "git", "clone", "-q", "-b", "main", str(setup["origin"]), str(job_clone))
    job = sh(job_clone, "rnnbench", "retrain", "--task", TASK, "--jobs-dir", str(jobs),
             env=setup["env"])
    assert f"Running stage 'train@{TASK}-gru-{SEED}'" in job.stderr
    assert "Running stage 'report'" not in job.stderr  # the final job's
    assert sorted(p.name for p in (jobs / TASK).iterdir()) == ["dvc.lock", "job.json", "metrics"]

    broken = base / "no-jobs"
    broken.mkdir()
    bad = sh(work, "rnnbench", "retrain", "--gather", "--jobs-dir", str(broken),
             env=setup["env"], ok=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        f"error: {broken}: no task job's results in it")
    assert not sh(work, "git", "status", "--porcelain", "--untracked-files=no").stdout

    final = sh(work, "rnnbench", "retrain", "--gather", "--jobs-dir", str(jobs),
               env=setup["env"])
    assert "Running stage 'train@" not in final.stderr  # the job trained it
    assert "Running stage 'report'" in final.stderr
    summary = (work / "reports" / "retrain.md").read_text()
    assert f"- `train@{TASK}-gru-{SEED}`" in summary and f"**{TASK}**" in summary
    assert md5s(work / "metrics" / TASK) == md5s(jobs / TASK / "metrics")
    assert "up to date" in sh(work, "dvc", "status").stdout.lower()  # models pulled, lock merged
    assert len(versions(server)) == before + 1  # the job's winner, registered once


@pytest.mark.parametrize(("name", "content", "says"), [
    ("job.json", '{"task": "sentiment", "refreshed": tr', "line 1: not valid JSON (Expecting"),
    ("dvc.lock", "schema: '2.0'\nstages:\n  evaluate@sentiment: [", "line 3: not valid YAML"),
])
def test_a_task_job_result_cut_off_is_one_line_and_changes_nothing(tmp_path, name, content,
                                                                   says):
    """An artifact upload cut short left half a job.json: the final job stopped on a
    JSONDecodeError traceback."""
    from pipeline.config import load_params
    from pipeline.errors import RnnbenchError
    from pipeline.retrain.fanout import gather

    job = tmp_path / "fanout" / TASK
    (job / "metrics").mkdir(parents=True)
    state = {"md5": "0" * 32, "examples": 1, "sha256": "0" * 64}
    (job / "job.json").write_text(json.dumps({"task": TASK, "refreshed": False, "before": state,
                                              "after": state, "ran": [], "stages": []}))
    (job / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (job / name).write_text(content)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    with pytest.raises(RnnbenchError) as err:
        gather(tmp_path, tmp_path / "fanout", load_params(ROOT / "params.yaml"))
    assert str(err.value).startswith(f"{job / name} {says}" if name == "job.json"
                                     else f"{job / name}: {says}")
    assert "\n" not in str(err.value)
    assert (tmp_path / "dvc.lock").read_text() == "schema: '2.0'\nstages: {}\n"
    assert not (tmp_path / "metrics").exists()


@pytest.mark.parametrize(("challenger", "champion", "p", "promoted", "words"), [
    (0.78, 0.74, 0.001, True, "promoted: challenger"),
    (0.70, 0.76, 0.0004, False, "kept the champion (it is significantly better): challenger"),
    (0.75, 0.76, 0.4, False, "kept the champion (the challenger is not significantly better)"),
    (0.77, 0.76, 0.3, False, "kept the champion (the challenger is not significantly better)"),
])
def test_a_decision_says_which_side_its_p_value_favours(challenger, champion, p, promoted, words):
    """'kept the champion ... p < 0.001' read the same whether the champion was far better
    or the two were tied."""
    decision = Decision("sentiment", "3", "gru", 42, "accuracy", challenger, "2", champion, p,
                        "paired bootstrap over 48 test groups", promoted)
    assert decision.words().startswith(words)
