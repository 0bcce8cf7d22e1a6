"""Real servers on 127.0.0.1 for the tests: a free port, and a process that answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
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
            env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[Path]:
    """Run `cmd` in a session of its own until `health` answers 200; stop it (and its
    workers) afterwards. Its output goes to a file, whose path is yielded (removed at the
    end): a pipe nobody reads fills up (64 KB) and then blocks the server mid-request, which
    hung a long module."""
    # the environment's own tools first (`mlflow models serve` starts `uvicorn` by name)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with tempfile.NamedTemporaryFile("w+b", prefix="server-", suffix=".log",
                                     delete=False) as out:
        log = Path(out.name)
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PATH": path, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(health, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    text = log.read_text(errors="replace")
                    pytest.fail(f"{' '.join(cmd[:4])} exited: {text[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{' '.join(cmd[:4])} did not answer {health} in {timeout} s")
                time.sleep(0.5)
        yield log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.unlink(missing_ok=True)
