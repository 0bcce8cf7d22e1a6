"""Real servers on 127.0.0.1 for the tests: a free port, and a process that answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(cmd: list[str], health: str, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 120
            ) -> Iterator[subprocess.Popen]:
    """Run `cmd` in a session of its own until `health` answers 200; stop it (and its
    workers) afterwards. Its output stays readable from the yielded process once stopped."""
    # the environment's own tools first (`mlflow models serve` starts `uvicorn` by name)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PATH": path, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(health, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    pytest.fail(f"{' '.join(cmd[:4])} exited: {out[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{' '.join(cmd[:4])} did not answer {health} in {timeout} s")
                time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
