"""Stage processes that start warm.

DVC starts every stage as a new `python -m stages.X ...` process, and on this project's 2-core
machine importing PyTorch, Lightning and MLflow takes 8-9 s of it: more than many stages' own
work, and 12 s of each training stage's 90. `rnnbench repro` therefore starts one server that
imports them once (`serve`). A stage process that finds it (`run_warm`) hands over its module,
command line, environment, working directory and standard streams, then waits: the server
forks a copy of itself, everything imported, which runs the stage module as `python -m` would
and exits with its code; the stage process exits with the same code, and passes a Ctrl-C or
a kill on to it.

The results do not depend on it: the same code runs, and the server never touches a tensor
before it forks (no thread pool started, no random stream drawn), so each fit seeds and
threads itself as in a fresh process (tests/test_warm.py compares the weights). Where no
server answers (a plain `dvc repro`, `dvc exp run`, a system without fork), the stage simply
runs in its own process, as before.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

ADDRESS = "RNNBENCH_WARM"  # the environment variable naming the server's socket
# What the stages import, in the order that loads the most first; nothing here runs a
# tensor operation at import.
PRELOAD = ("torch", "pytorch_lightning", "mlflow.pyfunc", "mlflow.store.tracking.sqlalchemy_store",
           "optuna", "pipeline.tuning.fits", "pipeline.tuning.tune",
           "pipeline.evaluation.evaluate", "pipeline.training.longrange",
           "pipeline.data.prepare", "pipeline.report.assemble")
HEADER = 8  # bytes of a length, or of a pid


def available() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "AF_UNIX") and hasattr(socket, "send_fds")


@contextlib.contextmanager
def warm_server(root: Path) -> Iterator[dict[str, str]]:
    """A server for the stages run meanwhile: yields the environment that points them at it
    (nothing where this system cannot fork). Stages that start before it listens, or after
    it failed, run cold."""
    if not available():
        yield {}
        return
    folder = Path(tempfile.mkdtemp(prefix="rnnbench-warm-"))  # mode 0700: this user's only
    address = str(folder / "socket")
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "pipeline.warm", address], cwd=root,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  start_new_session=True)
    try:
        yield {ADDRESS: address}
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def run_warm(module: str) -> int | None:
    """The exit code of `module` run by the warm server with this process's command line,
    environment, working directory and standard streams; None where no server answers."""
    address = os.environ.get(ADDRESS)
    if not address or not available():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(address)
    except OSError:
        conn.close()
        return None
    with conn:
        env = {k: v for k, v in os.environ.items() if k != ADDRESS}  # the stage runs once
        request = json.dumps({"module": module, "argv": sys.argv, "cwd": os.getcwd(),
                              "env": env}).encode()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            socket.send_fds(conn, [len(request).to_bytes(HEADER, "big") + request], [0, 1, 2])
            pid = int.from_bytes(_read(conn, HEADER), "big")
        except OSError:  # the server went away before it started the stage: run cold
            return None

        def forward(signum: int, _frame: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        try:
            return int.from_bytes(_read(conn, HEADER), "big", signed=True)
        except OSError:
            print(f"error: the warm server ({address}) stopped while the stage ran",
                  file=sys.stderr)
            return 1


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("the warm server closed the connection")
        data += chunk
    return data


def serve(address: str) -> None:
    """Import what the stages use, then fork a child per request until terminated."""
    for name in PRELOAD:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # the imports' objects: shared by every child, never traversed again
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    clients: dict[int, socket.socket] = {}  # child pid -> its stage process's connection
    watched: dict[socket.socket, int] = {}  # connections whose stage process may vanish
    while True:
        ready, _, _ = select.select([listener, *watched], [], [], 0.2)
        for sock in ready:
            if sock is listener:
                conn, _ = listener.accept()
                pid = _start(conn, listener, clients)
                if pid:
                    clients[pid], watched[conn] = conn, pid
                    conn.sendall(pid.to_bytes(HEADER, "big"))
            elif not sock.recv(1):  # its stage process is gone (killed): stop the stage
                with contextlib.suppress(ProcessLookupError):
                    os.kill(watched.pop(sock), signal.SIGTERM)
        while clients:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                break
            conn = clients.pop(pid)
            watched.pop(conn, None)
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):  # as a shell reports a signal: 128 + its number
                conn.sendall((code if code >= 0 else 128 - code).to_bytes(HEADER, "big",
                                                                          signed=True))
            conn.close()


def _start(conn: socket.socket, listener: socket.socket, clients: dict[int, socket.socket]
           ) -> int:
    """Fork the child that runs the request on `conn`; its pid (0 where the request was
    unreadable)."""
    try:
        head, fds, _, _ = socket.recv_fds(conn, HEADER, 3)
        head += _read(conn, HEADER - len(head))
        request = json.loads(_read(conn, int.from_bytes(head, "big")))
    except (OSError, ValueError, ConnectionError):
        conn.close()
        return 0
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    for sock in (listener, conn, *clients.values()):
        sock.close()
    os._exit(_child(request, fds))


def _child(request: dict, fds: list[int]) -> int:
    """Become the stage process: its streams, directory, environment and arguments, then run
    its module as `python -m` does; the exit code."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    sys.stdin = open(0, closefd=False, encoding="utf-8")  # noqa: SIM115 - the process's own
    sys.stdout = open(1, "w", closefd=False, encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      buffering=1)
    sys.stderr = open(2, "w", closefd=False, encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      buffering=1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if isinstance(done.code, int) or done.code is None:
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # as the interpreter would: the traceback, exit 1
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code


if __name__ == "__main__":
    serve(sys.argv[1])
