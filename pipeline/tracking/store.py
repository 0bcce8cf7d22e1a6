"""The MLflow store: where it is, a client for it, its experiments, one guard that turns its
failures into one line, and the UI server over a local store.

Every run lands in one store whatever DVC does: `dvc exp run --temp` and the experiment queue
run stages inside `.dvc/tmp/exps/...`, so the default sqlite store is resolved against the
real project root, never the working directory. MLFLOW_TRACKING_URI overrides it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.config import SharedParams
from pipeline.errors import RnnbenchError, causes, fail
from pipeline.files import one_at_a_time

# MLflow logs a database error with its traceback before raising it; rnnbench reports it in one
# line (store_errors below), whole with RNNBENCH_DEBUG=1.
if not os.environ.get("RNNBENCH_DEBUG"):
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def project_root(start: Path | None = None) -> Path:
    """The real project root, also from inside a DVC experiment's temporary copy."""
    here = (start or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() or (folder / ".dvc").is_dir():
            return folder
    return here


def local_store(root: Path) -> Path:
    return project_root(root) / "mlruns"


def tracking_uri(params: SharedParams, root: Path | None = None) -> str:
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    if params.tracking.uri:
        return params.tracking.uri
    return f"sqlite:///{local_store(root or Path.cwd()) / 'mlflow.db'}"


def shown_uri(uri: str, root: Path) -> str:
    """The store as a report names it: inside the project, relative to it (a valid sqlite URI
    from the project root), so a committed report points at the store of every clone."""
    path = Path(uri.removeprefix("sqlite:///"))
    if not uri.startswith("sqlite:///") or not path.is_absolute():
        return uri
    try:
        return f"sqlite:///{path.relative_to(project_root(root))}"
    except ValueError:
        return uri


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back until the MLflow call inside has finished. Interrupted inside
    a sqlite transaction, MLflow leaves the database locked, and marking the run KILLED then
    failed with a traceback; held back, the interrupt is raised again right after the call,
    to whatever handler was there. (Blocking the signal per thread is not enough: PyTorch's
    threads would take it.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; signals are handled there
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)


@contextmanager
def store_errors(uri: str, what: str) -> Iterator[None]:
    """Whatever makes the store unusable (a bad URI, a folder that cannot exist, a read-only
    database, a server that refuses) is one line naming the store, not the traceback of
    whichever MLflow, SQLAlchemy or OS call met it first. On a local (sqlite) store, Ctrl-C
    waits for the call; a server's calls stay interruptible (a cut request locks nothing)."""
    try:
        with uninterrupted() if uri.startswith("sqlite:") else nullcontext():
            yield
    except RnnbenchError:
        raise
    except Exception as err:  # every failure of the store is the same to its user
        *_, root = causes(err)  # "unable to open database file", not SQLAlchemy's wrapping
        reason = (str(root).strip().splitlines() or [type(root).__name__])[0]
        status = err.get_http_status_code() if isinstance(err, MlflowException) else None
        if status in REFUSED:
            reason = REFUSED[status]
        fail(f"MLflow store {uri}: {what} failed: {reason}")


# A server with basic auth answers 401/403 with a link to MLflow's docs; what to change here:
REFUSED = {401: "the server refused the credentials (401): set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD to a user of this server",
           403: "permission denied (403): ask the server's admin to grant "
                "MLFLOW_TRACKING_USERNAME's user EDIT on the experiment"}


def require_server(uri: str) -> None:
    """A tracking server that refuses connections (or whose host does not resolve) fails in
    seconds: MLflow's own retries spent 252 s before reporting it."""
    where = urlsplit(uri)
    port = where.port or (443 if where.scheme == "https" else 80)
    try:
        socket.create_connection((where.hostname or "", port), timeout=10).close()
    except OSError as err:
        fail(f"MLflow store {uri}: cannot connect ({err.strerror or err}); is the tracking "
             "server running, and is MLFLOW_TRACKING_URI or tracking.uri right?")


# A tracking server answering 5xx is retried, within bounds: MLflow's own default (7 retries,
# backoff factor 2) waits about 4 minutes before saying anything; this waits about 15 s.
# Either variable, set by the user, wins.
SERVER_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def client_for(params: SharedParams, root: Path | None = None) -> MlflowClient:
    uri = tracking_uri(params, root)
    # A progress bar per artifact download (a model loaded to check its example) is noise in
    # a stage's log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with store_errors(uri, "opening the store"):
        if uri.startswith(("http://", "https://")):
            require_server(uri)
            for name, value in SERVER_RETRIES.items():
                os.environ.setdefault(name, value)
        if not uri.startswith("sqlite:///"):
            return MlflowClient(uri)
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        # Stages side by side (`rnnbench repro`, the DVC queue) each create a new database's
        # tables on opening it, and all but one failed ("table ... already exists"): one at a
        # time, the others then find them made.
        with one_at_a_time(db):
            return MlflowClient(uri)


def call(what: str, uri: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an MLflow call; an unreachable or failing store is one clear line."""
    with store_errors(uri, what):
        return fn(*args, **kwargs)


# MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and showed
# rnnbench's as GenAI experiments (an empty traces overview) instead of their runs.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def experiment_id(client: MlflowClient, name: str, root: Path | None = None) -> str:
    uri = client.tracking_uri
    exp = call("looking up the experiment", uri, client.get_experiment_by_name, name)
    if exp is not None:
        if exp.tags.get(KIND_TAG) != KIND:
            call("tagging the experiment", uri, client.set_experiment_tag, exp.experiment_id,
                 KIND_TAG, KIND)
        return exp.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside the local DB, not in the cwd
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts" / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts,
                                        tags={KIND_TAG: KIND})
    except MlflowException as err:
        # created meanwhile by a concurrent worker (mlflow#4123): the name is unique in the
        # database, so exactly one create wins and the others read the winner's
        exp = call("looking up the experiment", uri, client.get_experiment_by_name, name)
        if exp is None:
            fail(f"MLflow store {uri}: creating the experiment {name} failed: {err.message}")
        return exp.experiment_id


def find_experiment(client: MlflowClient, name: str) -> str | None:
    """The id of the experiment `name`, or None where there is none yet."""
    exp = call("looking up the experiment", client.tracking_uri, client.get_experiment_by_name,
               name)
    return exp.experiment_id if exp is not None else None


def compare_url(base: str, experiment: str, run_ids: list[str]) -> str:
    """The MLflow UI's side-by-side comparison of these runs (parallel coordinates, charts)."""
    query = urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment])})
    return f"{base}/#/compare-runs?{query}"


def port_in_use(host: str, port: int) -> bool:
    """Whether something already answers on host:port (a server to be started would fail)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        return probe.connect_ex((host, port)) == 0


def serve_ui(uri: str, port: int, workers: int) -> None:
    """Replace this process by an MLflow server for the local store `uri` on 127.0.0.1:`port`
    (the server takes this PID: stopping it is one signal). A remote store is its own UI."""
    if not uri.startswith("sqlite:///"):
        print(f"runs are on a tracking server: open {uri}")
        return
    db = Path(uri.removeprefix("sqlite:///"))
    if not db.exists():
        fail(f"{db}: no MLflow store yet; run `dvc repro` first")
    if port_in_use("127.0.0.1", port):
        fail(f"--port {port}: already in use on 127.0.0.1; choose another port")
    print(f"MLflow UI on http://127.0.0.1:{port} (store {db}); Ctrl-C stops it", file=sys.stderr)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--artifacts-destination", str(db.parent / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    sys.stdout.flush()
    os.execve(sys.executable, cmd, {**os.environ, **LEAN})


# MLflow 3's server also starts a pool of job-executor processes for its GenAI features (trace
# archival, scorers), none of which rnnbench uses: 1.5 GB resident here for nothing, unless
# the user sets the variable.
LEAN = {k: os.environ.get(k, v) for k, v in {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}.items()}
