"""The warm server of `rnnbench repro` (pipeline/warm.py): a stage it runs behaves as the same
stage in a process of its own: the same weights, output, exit code, Ctrl-C and kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.warm import ADDRESS, available, warm_server
from tests.conftest import SEED, TASK, copy_prepared

pytestmark = pytest.mark.skipif(not available(), reason="needs fork and UNIX sockets")


@pytest.fixture(scope="module")
def project(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_prepared(prepared, tmp_path_factory.mktemp("warm"))


@pytest.fixture(scope="module")
def server(project: Path) -> dict[str, str]:
    """The server, once it listens (a stage that comes earlier runs cold)."""
    with warm_server(project) as env:
        deadline = time.monotonic() + 180
        while not Path(env[ADDRESS]).exists():
            assert time.monotonic() < deadline, "the warm server did not start"
            time.sleep(0.2)
        yield env


def stage(project: Path, *args: str, env: dict[str, str] | None = None,
          **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=project, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})}, **popen)


def test_a_warm_training_stage_gives_a_cold_ones_weights_and_output(project, server):
    weights = project / "models" / TASK / "gru" / f"seed{SEED}" / "model.pt"
    runs = {}
    for name, env in (("cold", {}), ("warm", server)):
        start = time.perf_counter()
        out, err = stage(project, "stages.train", TASK, "gru", str(SEED), env=env).communicate()
        runs[name] = (out, err, weights.read_bytes(), time.perf_counter() - start)
        shutil.rmtree(weights.parent)
    (_, cold_err, cold, cold_s), (_, warm_err, warm, warm_s) = runs["cold"], runs["warm"]
    assert warm == cold
    last = [err.strip().splitlines()[-1] for err in (cold_err, warm_err)]
    assert last[0].split("; MLflow run")[0].split("(")[0] == last[1].split("(")[0]
    print(f"train stage: cold {cold_s:.1f} s, warm {warm_s:.1f} s")


def test_a_warm_stage_fails_as_a_cold_one_in_one_line(project, server):
    results = []
    for env in ({}, server):
        proc = stage(project, "stages.train", TASK, "nosuchcell", str(SEED), env=env)
        _, err = proc.communicate()
        results.append((proc.returncode, err.strip()))
    assert results[0] == results[1]
    code, err = results[0]
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_a_warm_stage_stops_with_its_process(project, server, how):
    """Ctrl-C on the stage process interrupts the stage (exit 130, as a cold one); killing it
    outright stops the stage too, rather than leaving it writing outputs."""
    params = project / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["train"].update(max_epochs=500, patience=500, limit_train_batches=None)
    params.write_text(yaml.safe_dump(raw, sort_keys=False))  # a fit that outlasts the test
    proc = stage(project, "stages.train", TASK, "lstm", str(SEED), env=server,
                 start_new_session=True)
    time.sleep(5)
    children = subprocess.run(["pgrep", "-P", str(server_pid(server))], capture_output=True,
                              text=True).stdout.split()
    assert len(children) == 1, children  # the forked stage
    os.kill(proc.pid, signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == (130 if how == "ctrl-c" else -signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{children[0]}").exists():
        assert time.monotonic() < deadline, "the stage outlived its process"
        time.sleep(0.2)


def server_pid(env: dict[str, str]) -> int:
    found = subprocess.run(["pgrep", "-f", f"pipeline.warm {env[ADDRESS]}"],
                           capture_output=True, text=True).stdout.split()
    return int(found[0])
