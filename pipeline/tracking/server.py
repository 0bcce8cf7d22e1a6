"""`rnnbench server`: MLflow's tracking server for a team, on a real database (PostgreSQL),
serving the artifacts itself (a folder or an S3 bucket behind it, so clients need no storage
credentials), optionally behind MLflow's basic auth.

No secret passes through rnnbench: the database password is libpq's (PGPASSWORD or
~/.pgpass), the first admin's is MLflow's (MLFLOW_AUTH_ADMIN_PASSWORD), and the clients'
are MLflow's (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from pipeline.config import SharedParams
from pipeline.config.sections import ServerParams
from pipeline.errors import fail, redact
from pipeline.tracking.location import check_database, local_store, port_in_use

# MLflow 3's server also starts a pool of job-executor processes for its GenAI features (trace
# archival, scorers), none of which rnnbench uses: 1.5 GB resident here for nothing, unless
# the user sets the variable.
LEAN = {k: os.environ.get(k, v) for k, v in {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}.items()}

SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"  # CSRF key the auth app's workers must share
ADMIN_ENV = ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")


def backend_store(settings: ServerParams, root: Path) -> str:
    if settings.backend_store:
        return settings.backend_store
    return f"sqlite:///{local_store(root) / 'mlflow.db'}"


def artifacts_destination(settings: ServerParams, root: Path) -> str:
    if settings.artifacts is None:
        return str(local_store(root) / "artifacts")
    if "://" in settings.artifacts:
        return settings.artifacts
    return str((root / settings.artifacts).resolve())


def auth_config(database: str, folder: Path) -> Path:
    """The basic-auth app's settings: users and permissions in the same database as the runs
    (a team shares one), new users may read everything and change nothing of others' until
    granted (MLflow lets any user create experiments of their own)."""
    folder.mkdir(parents=True, exist_ok=True)
    users = (f"sqlite:///{Path(database.removeprefix('sqlite:///')).parent / 'basic_auth.db'}"
             if database.startswith("sqlite:") else database)
    path = folder / "basic_auth.ini"
    path.write_text("[mlflow]\ndefault_permission = READ\n"
                    f"database_uri = {users}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
                    encoding="utf-8")
    return path


def server_command(settings: ServerParams, root: Path) -> tuple[list[str], dict[str, str]]:
    """The `mlflow server` command line and its environment."""
    database = backend_store(settings, root)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", database,
           "--serve-artifacts", "--artifacts-destination", artifacts_destination(settings, root),
           "--host", settings.host, "--port", str(settings.port),
           "--workers", str(settings.workers)]
    env = {**os.environ, **LEAN}
    if settings.auth:
        missing = [name for name in ADMIN_ENV if not os.environ.get(name)]
        if missing:
            fail(f"tracking.server.auth: set {' and '.join(missing)} (the first admin's "
                 "credentials, read once when the user store is new)")
        folder = root / ".rnnbench" / "server"
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config(database, folder))
        env.setdefault(SECRET_KEY, secrets.token_hex(32))  # one key for every worker
        cmd += ["--app-name", "basic-auth"]
    return cmd, env


def serve(params: SharedParams, root: Path) -> None:
    """Replace this process by the server (it keeps the PID: Ctrl-C or one SIGTERM stops it
    and its workers), after checking the port and the database."""
    settings = params.tracking.server
    if port_in_use(settings.host, settings.port):
        fail(f"tracking.server.port {settings.port}: already in use on {settings.host}")
    database = backend_store(settings, root)
    if database.startswith("sqlite:"):
        from pipeline.tracking.store import create_local_store

        create_local_store(Path(database.removeprefix("sqlite:///")))
    else:
        check_database(database, "tracking.server.backend_store")
    cmd, env = server_command(settings, root)
    where = f"http://{settings.host}:{settings.port}"
    print(f"MLflow tracking server on {where} (runs: {redact(database)}, artifacts: "
          f"{artifacts_destination(settings, root)}{', basic auth' if settings.auth else ''}); "
          f"clients: MLFLOW_TRACKING_URI={where}; Ctrl-C stops it", file=sys.stderr, flush=True)
    os.execve(sys.executable, cmd, env)


def serve_ui(uri: str, port: int, workers: int) -> None:
    """Replace this process by an MLflow server for the local store `uri` on 127.0.0.1:`port`
    (the server takes this PID: stopping it is one signal). A remote store is its own UI."""
    if not uri.startswith("sqlite:///"):
        print(f"runs are on a tracking server: open {redact(uri)}")
        return
    db = Path(uri.removeprefix("sqlite:///"))
    if not db.exists():
        fail(f"{db}: no MLflow store yet; run `dvc repro` first")
    print(f"MLflow UI on http://127.0.0.1:{port} (store {db}); Ctrl-C stops it", file=sys.stderr)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--artifacts-destination", str(db.parent / "artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    sys.stdout.flush()
    os.execve(sys.executable, cmd, {**os.environ, **LEAN})


def serve_model(uri: str, model: str, host: str, port: int) -> None:
    """Replace this process by MLflow's scoring server for the registered `model` (`models:/
    NAME@ALIAS`) of the store `uri`: with MLFLOW_TRACKING_URI unset, `mlflow models serve` would
    look in ./mlflow.db, wherever it is run, and find no model."""
    if port_in_use(host, port):
        fail(f"--port {port}: already in use on {host}; choose another port")
    print(f"serving {model} on http://{host}:{port}/invocations (store {redact(uri)}); "
          "Ctrl-C stops it", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "--env-manager",
           "local", "--host", host, "--port", str(port)]
    # MLflow starts `uvicorn` by name: this environment's, also where it is not activated
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.execve(sys.executable, cmd, {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": uri})
