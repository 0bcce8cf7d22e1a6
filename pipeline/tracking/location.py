"""Where the MLflow store is, and whether what it needs answers: its URI (the project's own
sqlite store unless MLFLOW_TRACKING_URI or tracking.uri names another), a database checked
before MLflow opens it, a port checked before a server binds it. No MLflow import: commands
that only need these (`rnnbench ui` refusing a busy port, `rnnbench server`) answer at once.

Every run lands in one store whatever DVC does: `dvc exp run --temp` and the experiment queue
run stages inside `.dvc/tmp/exps/...`, so the default sqlite store is resolved against the
real project root, never the working directory.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from pipeline.config import SharedParams
from pipeline.errors import causes, fail, one_line, redact


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


def is_database(uri: str) -> bool:
    """A database server's URI (PostgreSQL, MySQL, SQL Server), not a file or an HTTP server."""
    return uri.split("://")[0].split("+")[0] in ("postgresql", "mysql", "mssql")


def shown_uri(uri: str, root: Path) -> str:
    """The store as a report names it: inside the project, relative to it (a valid sqlite URI
    from the project root), so a committed report points at the store of every clone; never
    with a password."""
    path = Path(uri.removeprefix("sqlite:///"))
    if not uri.startswith("sqlite:///") or not path.is_absolute():
        return redact(uri)
    try:
        return f"sqlite:///{path.relative_to(project_root(root))}"
    except ValueError:
        return uri


def port_in_use(host: str, port: int) -> bool:
    """Whether something already answers on host:port (a server to be started would fail)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        return probe.connect_ex((host, port)) == 0


# A database that does not answer in time is tried this often, this many seconds apart (times
# the try), each try waiting this long for the connection: about 18 s in all, where MLflow's
# own engine retried for about 116 s, silent. Anything else fails at once.
DATABASE_TRIES, DATABASE_PAUSE_S, DATABASE_TIMEOUT_S = 3, 1.0, 5


def check_database(uri: str, what: str) -> None:
    """Connect to the database `uri` (named `what` in the message) before MLflow or Optuna
    opens it: a wrong password, a missing database or a host that is down is one line within
    seconds, with the driver's own reason and no password."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    postgres, start = uri.startswith("postgresql"), time.monotonic()
    for attempt in range(1, DATABASE_TRIES + 1):
        try:
            engine = create_engine(uri, connect_args={"connect_timeout": DATABASE_TIMEOUT_S}
                                   if postgres else {})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            return
        except Exception as err:  # the driver's own words say what is wrong
            *_, root = causes(err)
            reason = one_line(str(root)) or type(root).__name__
            # only a timeout may pass; a refused connection or password, a missing database,
            # host or driver: asking again changes nothing
            final = not isinstance(err, OperationalError) or not any(
                word in reason.lower() for word in ("timeout", "timed out"))
            if final or attempt == DATABASE_TRIES:
                tries = (f" (tried {attempt} times over {time.monotonic() - start:.0f} s)"
                         if attempt > 1 else "")
                fail(f"{what} {uri}: cannot connect{tries}: {reason}")
            time.sleep(DATABASE_PAUSE_S * attempt)
