"""The MLflow store: a client for it (the local one created whole or not at all), its
experiments, and one guard that turns its failures into one line. Where it is: `location`."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.config import SharedParams
from pipeline.errors import RnnbenchError, causes, fail
from pipeline.files import one_at_a_time
from pipeline.tracking.location import check_database, is_database, tracking_uri

# MLflow logs a database error with its traceback before raising it; rnnbench reports it in one
# line (store_errors below), whole with RNNBENCH_DEBUG=1.
if not os.environ.get("RNNBENCH_DEBUG"):
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


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
        elif is_database(uri):
            check_database(uri, "MLflow store")
        elif uri.startswith("sqlite:///"):
            create_local_store(Path(uri.removeprefix("sqlite:///")))
        return MlflowClient(uri)


def create_local_store(db: Path) -> None:
    """Make sure the sqlite store `db` exists whole. MLflow builds a new store's schema in
    about 40 steps; killed in between, it left a database that every later run failed on
    ("duplicate column name", "table ... already exists"). So a new store is built in a
    scratch file and renamed into place, one process at a time (stages started side by side
    would each build it); a store left unfinished by an older rnnbench, holding no run yet,
    is built again."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with one_at_a_time(db):
        if db.exists():
            if not unfinished(db):
                return
            db.unlink()
        scratch = db.with_name(f".{db.name}.new")
        for leftover in (scratch, scratch.with_name(scratch.name + "-journal")):
            leftover.unlink(missing_ok=True)  # from a creator that was killed
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{scratch}", str(db.parent / "artifacts"))
        store.engine.dispose()
        os.replace(scratch, db)


def unfinished(db: Path) -> bool:
    """Whether `db` is a store whose schema was never finished and which holds no run: one
    that can be rebuilt from nothing. A store with runs is left to MLflow (an old schema is
    its `mlflow db upgrade`)."""
    import sqlite3

    from mlflow.store.db.utils import _get_latest_schema_revision

    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            tables = {name for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = (conn.execute("SELECT version_num FROM alembic_version").fetchone()
                       if "alembic_version" in tables else None)
            runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] \
                if "runs" in tables else 0
    except sqlite3.DatabaseError:
        return False  # not a database MLflow made: MLflow's own error says so
    return not runs and (version is None or version[0] != _get_latest_schema_revision())


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


def runs_in_store(client: MlflowClient, experiment: str, run_ids: list[str]) -> list[str]:
    """Those of `run_ids` that this store holds: models pulled from another clone, or trained
    against another store, name runs it has never seen."""
    if not run_ids:
        return []
    listed = ", ".join(f"'{r}'" for r in run_ids)
    found = call("searching runs", client.tracking_uri, client.search_runs, [experiment],
                 filter_string=f"attributes.run_id IN ({listed})", max_results=len(run_ids))
    held = {run.info.run_id for run in found}
    return [r for r in run_ids if r in held]


# MLflow 3.17's UI has a global switch, GenAI or model training, that decides how an
# experiment opens, over its `mlflow.experimentKind` tag; it starts on GenAI (an empty traces
# overview). A link that names the workflow opens on the experiment's runs.
WORKFLOW = {"workflowType": "machine_learning"}


def compare_url(base: str, experiment: str, run_ids: list[str]) -> str:
    """The MLflow UI's side-by-side comparison of these runs (parallel coordinates, charts)."""
    query = urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment]),
                       **WORKFLOW})
    return f"{base}/#/compare-runs?{query}"


def experiment_url(base: str, experiment: str) -> str:
    """The MLflow UI's page of an experiment, open on its runs."""
    return f"{base}/#/experiments/{experiment}?{urlencode(WORKFLOW)}"
