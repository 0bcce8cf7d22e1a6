"""`rnnbench repro`: DVC's own stages, side by side, in a real git + DVC repo."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import repo_params

pytestmark = pytest.mark.slow  # real processes: seconds each

# Each stage sleeps, then writes its output with when it ran; `needs` are its deps.
STAGE = ("import json, sys, time; t = time.time(); time.sleep({sleep}); "
         "{check}json.dump([t, time.time()], open('{name}.json', 'w'))")
GRAPH = {"a": [], "b": ["a"], "c": [], "d": ["b", "c"]}


def stage(name: str, needs: list[str], sleep: float = 1.0, fail: bool = False) -> dict:
    check = "sys.exit('stage broke: bad input on line 3') if True else None; " if fail else ""
    cmd = STAGE.format(sleep=sleep, check=check, name=name)
    return {"cmd": f'"{sys.executable}" -c "{cmd}"', "deps": [f"{n}.json" for n in needs],
            "outs": [{f"{name}.json": {"cache": False}}]}


def write_dvc_yaml(repo: Path, sleep: dict[str, float] | None = None,
                   broken: str | None = None) -> None:
    stages = {n: stage(n, needs, (sleep or {}).get(n, 1.0), fail=n == broken)
              for n, needs in GRAPH.items()}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))


def run(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=repo, text=True,
                          capture_output=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def dvc(repo: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, text=True,
                          capture_output=True, check=True, timeout=120)
    return proc.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc(tmp_path, "init", "-q")
    dvc(tmp_path, "config", "core.analytics", "false")
    write_dvc_yaml(tmp_path)
    return tmp_path


def spans(repo: Path) -> dict[str, tuple[float, float]]:
    return {n: tuple(json.loads((repo / f"{n}.json").read_text())) for n in GRAPH}


def test_independent_stages_run_side_by_side_after_what_they_need(repo):
    out = run(repo, "repro", "-j", "2").stdout
    t = spans(repo)
    assert t["b"][0] >= t["a"][1] and t["d"][0] >= max(t["b"][1], t["c"][1])
    # a and c need nothing: with two lanes they start together and overlap
    assert t["c"][0] < t["a"][1] and t["a"][0] < t["c"][1]
    assert "a | Running stage 'a'" in out and "4 stage(s)" in out
    # exactly what a plain `dvc repro` records: it finds nothing left to do
    assert "up to date" in dvc(repo, "repro") and dvc(repo, "status").strip().startswith(
        "Data and pipelines are up to date")
    again = run(repo, "repro", "-j", "2").stdout
    assert "Running stage" not in again and "up to date" in again


def test_one_lane_runs_one_stage_at_a_time(repo):
    out = run(repo, "repro", "-j", "1").stdout
    ends = sorted(spans(repo).values())
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(ends))
    assert "| " not in out  # one lane: DVC's own output, unprefixed


def test_only_what_changed_and_what_is_downstream_of_it_reruns(repo):
    run(repo, "repro", "-j", "2")
    before = spans(repo)
    write_dvc_yaml(repo, sleep={"b": 1.1})
    out = run(repo, "repro", "-j", "2").stdout
    after = spans(repo)
    assert {n for n in GRAPH if after[n] != before[n]} == {"b", "d"}
    assert "2 stage(s)" in out


def test_targets_limit_the_run_to_them_and_what_they_need(repo):
    run(repo, "repro", "b")
    assert (repo / "a.json").exists() and (repo / "b.json").exists()
    assert not (repo / "c.json").exists() and not (repo / "d.json").exists()
    bad = run(repo, "repro", "nope", check=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: nope: no such stage in dvc.yaml (`dvc stage list` names them)"]


def test_a_failing_stage_is_named_in_one_line_and_nothing_downstream_starts(repo):
    write_dvc_yaml(repo, broken="b")
    proc = run(repo, "repro", "-j", "2", check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith("error: stage b failed: failed to reproduce 'b'")
    assert "Traceback" not in proc.stderr and "stage broke: bad input on line 3" in proc.stdout
    assert (repo / "a.json").exists() and not (repo / "d.json").exists()
    assert not (repo / "b.json").exists()


def test_ctrl_c_stops_every_lane_and_exits_130(repo):
    write_dvc_yaml(repo, sleep=dict.fromkeys(GRAPH, 60.0))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "repro", "-j", "2"],
                            cwd=repo, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(repo.glob(".dvc/tmp/rwlock*"))) == 0:
        time.sleep(0.2)
    time.sleep(3)  # both lanes inside their stage's command
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert time.monotonic() - started < 30  # not the stages' 60 s
    assert err.strip().splitlines()[-1] == "interrupted"
    assert not any((repo / f"{n}.json").exists() for n in GRAPH)
    assert os.listdir(repo)  # the repo is intact; a rerun would start over


def test_a_second_run_while_one_runs_is_refused_naming_the_holder(repo):
    """DVC's refusal spans lines (the holder's PID and command on the next one); the second
    run printed the first line alone, ending in "is being blocked by:"."""
    write_dvc_yaml(repo, sleep=dict.fromkeys(GRAPH, 30.0))
    first = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "repro", "-j", "2"],
                             cwd=repo, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(repo.glob(".dvc/tmp/rwlock*")):
            time.sleep(0.2)
        time.sleep(2)  # inside a stage's command, its outputs locked
        second = run(repo, "repro", check=False)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert second.returncode == 2, second.stdout + second.stderr
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("error: dvc: ") and "Traceback" not in second.stderr
    assert re.search(r"is being blocked by: \(PID \d+\): .*dvc.* repro", line), line


# The pid of the Python process (`dvc repro`) above this stage. DVC runs a stage through
# $SHELL or /bin/sh; bash execs a lone command, dash forks it, so the direct parent may be a shell.
DVC_PARENT = """import json, os, sys
pid = os.getppid()
while "python" not in open(f"/proc/{pid}/comm").read():
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
json.dump(pid, open(sys.argv[1], "w"))
"""


@pytest.mark.parametrize("tuning", [False, True])
def test_note_only_stages_share_one_dvc_process_while_tuning_is_off(repo, tuning):
    """With tuning off the tune stages only write a note: DVC's start-up (4-5 s a stage here)
    is paid once for the group, not per stage. Each stage records the `dvc repro` process that
    ran it; with tuning on each tune stage is a study and gets its own, as train stages
    always do."""
    params = repo_params()
    params["tune"]["enabled"] = tuning
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "parent.py").write_text(DVC_PARENT)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        group: {"foreach": [f"{group}-{i}" for i in range(3)],
                "do": {"cmd": f'"{sys.executable}" parent.py ${{item}}.json',
                       "outs": [{"${item}.json": {"cache": False}}]}}
        for group in ("tune", "train")}}, sort_keys=False))
    out = run(repo, "repro", "-j", "2").stdout
    parents = {group: {json.loads((repo / f"{group}-{i}.json").read_text()) for i in range(3)}
               for group in ("tune", "train")}
    assert len(parents["tune"]) == (3 if tuning else 1), parents
    assert len(parents["train"]) == 3, parents
    assert "6 stage(s)" in out and out.count("Stage 'tune@tune-") == 3
    assert "up to date" in dvc(repo, "repro")
