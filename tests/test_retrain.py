"""Scheduled retraining, round by round, as CI runs it: a git repo with a bare origin, a DVC
remote in a folder, a real MLflow tracking server on 127.0.0.1, and one task read from a
local CoNLL-U file without a pinned hash (so every round re-reads it) that grows between rounds.

The task tags parts of speech: on the few hundred sentences a test can train on in seconds a
tagger learns (it beats always saying NOUN), where a sentiment model on a few hundred reviews
only learns to say "fresh", which promotion rightly refuses to register."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipeline.retrain.promote import Decision, Evidence
from pipeline.tracking.server import LEAN
from tests.conftest import ROOT, SEED, TASK, tiny_params, write_params
from tests.servers import free_port, serving
from tests.test_serving import invoke, predicted
from tests.test_tagging import DATA

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
NAME = f"rnnbench-{TASK}"
FIRST_ROWS = 180  # of the sample's 300 sentences; round 3 appends the rest


def sh(cwd: Path, *cmd: str, env: dict[str, str] | None = None, ok: bool = True
       ) -> subprocess.CompletedProcess:
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PATH": path, **(env or {})})
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def write_sentences(path: Path, rows: list[str]) -> None:
    path.write_text("".join(rows), encoding="utf-8")


def sentences() -> list[str]:
    """The Brown sample's sentences as CoNLL-U blocks, without its `# newdoc` lines: each
    sentence is a group of its own (its split a hash of its text), so the file can grow."""
    text = (DATA / "brown_sample.conllu").read_text(encoding="utf-8")
    blocks = text.replace("# newdoc", "# doc").strip().split("\n\n")
    return [block + "\n\n" for block in blocks]


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
    """origin.git, a DVC remote folder, the CoNLL-U file and a clone to run rounds in."""
    base = tmp_path_factory.mktemp("retrain")
    data, remote, origin, work = (base / "brown.conllu", base / "dvc-remote",
                                  base / "origin.git", base / "work")
    write_sentences(data, sentences()[:FIRST_ROWS])
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
    raw["data"].update(dataset="conllu", source={"kind": "local", "path": str(data)})
    raw["train"].update(max_epochs=8, lr=0.01)  # enough to learn: 55% tagged against 29% NOUN
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
    write_sentences(setup["data"], sentences())
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
    assert f"| {TASK} | {FIRST_ROWS} | {len(sentences())} |" in summary
    assert "re-read, changed" in summary and "dvc metrics diff" in summary
    assert f"Not one comparison: the data of {TASK} changed" in summary
    # stable splits: no film of round 1's training split is in round 3's test split
    assert "new to both models" in summary and "left out as seen" not in summary
    registered = versions(server)
    if "nothing registered: " in summary:  # the new winner did not beat the majority label
        assert len(registered) == 1 and alias(server, "challenger") == "1"
        return
    # the champion was re-scored on the new test split and the rule applied to both scores
    # (each outcome on purpose-built models: tests/test_serving.py)
    v2 = registered["2"].tags
    assert alias(server, "challenger") == "2" and v2["promotion.excluded_seen"] == "0"
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
    assert predicted(served) == predicted([json.loads(line) for line in local])
    assert len(served) == len(local) > 20


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



# gh as the workflow calls it: every call logged; `pr create` prints the new pull request's
# address, or fails as it does on GitHub while the repository forbids it (GH_FAILS=pr).
FAKE_GH = """#!/usr/bin/env bash
echo "gh $*" >> "$GH_LOG"
if [ "$1 $2" = "pr create" ]; then
  if [ "${GH_FAILS:-}" = pr ]; then
    echo "pull request create failed: GraphQL: GitHub Actions is not permitted to create or" \
      "approve pull requests (createPullRequest)" >&2
    exit 1
  fi
  echo "https://example.invalid/rnnbench/pull/7"
fi
"""
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


class Runner:
    """A job of retrain.yml, its `run` steps in order in bash as the runner starts them
    (`bash -e -o pipefail`), with their `if`, `env` and step outputs; `uses` steps are what
    the test does by hand (checkout: the clone; setup: .venv; artifacts: copied)."""

    def __init__(self, job: str, cwd: Path, values: dict[str, str], env: dict[str, str]):
        flow = yaml.safe_load((ROOT / ".github" / "workflows" / "retrain.yml").read_text())
        self.steps = [s for s in flow["jobs"][job]["steps"] if "run" in s]
        self.cwd, self.values, self.env = cwd, values, env
        self.outputs: dict[str, dict[str, str]] = {}
        self.ran: list[str] = []

    def value(self, expression: str) -> str:
        if m := re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+)", expression):
            return self.outputs.get(m.group(1), {}).get(m.group(2), "")
        assert expression in self.values, f"the test cannot give ${{{{ {expression} }}}}"
        return self.values[expression]

    def wanted(self, condition: str | None, failed: bool) -> bool:
        if condition is None:
            return not failed
        if condition == "always()":
            return True
        m = re.fullmatch(r"(\S+) (==|!=) '(.*)'", condition)
        assert m, f"the test cannot read `if: {condition}`"
        equal = self.value(m.group(1)) == m.group(3)
        return not failed and equal == (m.group(2) == "==")

    def run(self) -> bool:
        """Every step in order; whether all succeeded."""
        failed = False
        for step in self.steps:
            if not self.wanted(step.get("if"), failed):
                continue
            output = self.cwd.parent / f"output-{len(self.ran)}"
            output.write_text("")
            env = {k: EXPRESSION.sub(lambda m: self.value(m.group(1)), str(v))
                   for k, v in step.get("env", {}).items()}
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-o", "pipefail",
                                   "-c", step["run"]], cwd=self.cwd, text=True,
                                  capture_output=True, timeout=900,
                                  env={**self.env, **env, "GITHUB_OUTPUT": str(output)})
            self.ran.append(f"{step['name']}: {proc.returncode}")
            self.outputs[step.get("id", "")] = dict(
                line.split("=", 1) for line in output.read_text().splitlines())
            failed = failed or proc.returncode != 0
        return not failed


def test_the_retrain_workflow_steps_run_in_order_and_register_only_with_a_pull_request(
        rounds, setup, server):
    """retrain.yml's task job and final job, run step by step in a shell: first with
    `gh pr create` failing (the repository setting left off), which leaves the branch pushed
    and nothing registered; then as it should run: the pull request, then the registration,
    its decisions written into the pull request, test.yml started on the branch."""
    base, work = setup["base"], setup["work"]
    bin_dir, jobs = base / "gh-bin", work / "fanout"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    log, summary = base / "gh.log", base / "step-summary.md"
    env = {**os.environ, **setup["env"], "GH_LOG": str(log), "GITHUB_REF_NAME": "main",
           "GITHUB_STEP_SUMMARY": str(summary),
           "PATH": f"{bin_dir}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}"}
    values = {"github.token": "token", "matrix.task": TASK,
              "secrets.MLFLOW_TRACKING_URI": setup["env"]["MLFLOW_TRACKING_URI"],
              **{f"secrets.{k}": "" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                              "MLFLOW_TRACKING_USERNAME",
                                              "MLFLOW_TRACKING_PASSWORD")}}
    write_sentences(setup["data"], sentences()[: FIRST_ROWS + 40])  # new data: it retrains
    job_clone = base / "job-clone"
    sh(base, "git", "clone", "-q", "-b", "main", str(setup["origin"]), str(job_clone))
    for clone in (job_clone, work):  # the setup action's environment
        (clone / ".venv").symlink_to(BIN.parent)
    task_job = Runner("task", job_clone, values, env)
    assert task_job.run(), task_job.ran
    shutil.copytree(job_clone / "fanout", jobs)  # the artifact, downloaded

    broken = base / "no-jobs"
    broken.mkdir()
    bad = sh(work, "rnnbench", "retrain", "--gather", "--jobs-dir", str(broken),
             env=setup["env"], ok=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        f"error: {broken}: no task job's results in it")

    before = len(versions(server))
    refused = Runner("round", work, {**values, "github.run_id": "41"},
                     {**env, "GH_FAILS": "pr"})
    assert not refused.run()
    assert [line.split(":")[0] for line in refused.ran] == [
        "rnnbench retrain --gather --no-register", "Pull request with the round's results",
        "Round summary"]
    assert len(versions(server)) == before  # no pull request, nothing registered
    assert "Waiting for this round's pull request" in summary.read_text()
    assert "retrain/41" in sh(work, "git", "ls-remote", "origin").stdout

    sh(work, "git", "switch", "-q", "main")
    shutil.rmtree(jobs)
    shutil.copytree(job_clone / "fanout", jobs)
    round_job = Runner("round", work, {**values, "github.run_id": "42"}, env)
    assert round_job.run(), round_job.ran
    calls = log.read_text().splitlines()[-3:]
    assert calls[0].startswith("gh pr create --base main --head retrain/42")
    assert calls[1:] == ["gh pr edit https://example.invalid/rnnbench/pull/7 --body-file "
                         "reports/retrain.md", "gh workflow run test.yml --ref retrain/42"]
    added = versions(server)
    assert len(added) == before + 1  # the job's winner, registered once, after the PR
    newest = added[str(max(map(int, added)))]
    pushed = sh(work, "git", "log", "--format=%H %s", "origin/retrain/42").stdout.splitlines()
    assert pushed[0].endswith("Retraining round: what was registered")
    assert newest.tags["git_commit"] == pushed[1].split()[0]  # the pull request's commit
    text = sh(work, "git", "show", "origin/retrain/42:reports/retrain.md").stdout
    assert f"- **{TASK}**: " in text and "Waiting for" not in text
    assert f"- `train@{TASK}-gru-{SEED}`" in text
    assert "up to date" in sh(work, "dvc", "status").stdout.lower()
    sh(work, "git", "switch", "-q", "main")


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
    evidence = Evidence(480, 0, True, False, 0.5, "fresh", 0.0001)
    decision = Decision("sentiment", "3", "gru", 42, "accuracy", challenger, evidence, "2",
                        champion, p, "paired bootstrap over 48 test groups", promoted)
    assert decision.words().startswith(words)
