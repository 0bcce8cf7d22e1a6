"""One GPU per fit on a shared machine: real file locks between real processes (no GPU needed:
the claim is about indices; the Trainer then trains on the claimed one)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.training.gpus import claim_gpu

HOLD = """
import sys, time
from pathlib import Path
from pipeline.training.gpus import claim_gpu
with claim_gpu(int(sys.argv[1]), Path(sys.argv[2]), poll=0.05) as gpu:
    print(gpu, flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold(count: int, folder: Path, seconds: float) -> tuple[subprocess.Popen, str]:
    """Another worker holding a GPU for `seconds`, and the index it got."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(count), str(folder), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


@pytest.fixture(autouse=True)
def _no_user_choice(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_each_worker_takes_a_gpu_no_other_holds(tmp_path):
    with claim_gpu(3, tmp_path) as mine:
        other, theirs = hold(3, tmp_path, 0)
        other.wait(timeout=60)
    assert (mine, theirs) == (0, "1")
    with claim_gpu(3, tmp_path) as again:  # released on leaving
        assert again == 0


def test_a_killed_worker_frees_its_gpu(tmp_path):
    other, theirs = hold(2, tmp_path, 60)
    assert theirs == "0"
    with claim_gpu(2, tmp_path) as mine:
        assert mine == 1
    other.send_signal(signal.SIGKILL)
    other.wait(timeout=60)
    with claim_gpu(2, tmp_path) as mine:
        assert mine == 0


def test_more_workers_than_gpus_wait_for_one(tmp_path):
    first, a = hold(2, tmp_path, 1.5)
    second, b = hold(2, tmp_path, 1.5)
    assert {a, b} == {"0", "1"}
    started = time.monotonic()
    with claim_gpu(2, tmp_path, poll=0.05) as mine:
        waited = time.monotonic() - started
    assert mine in (0, 1) and waited > 0.5
    for proc in (first, second):
        proc.wait(timeout=60)


def test_nothing_is_claimed_on_one_gpu_or_where_the_user_chose(tmp_path, monkeypatch):
    with claim_gpu(1, tmp_path) as gpu:
        assert gpu is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with claim_gpu(4, tmp_path) as gpu:
        assert gpu is None
    assert not list(tmp_path.iterdir())
