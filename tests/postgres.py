"""A real PostgreSQL server for the tests: a fresh cluster in a temporary folder on 127.0.0.1,
with a password-protected user, started with the OS's own binaries (Debian's postgresql, which
.ci/run installs where missing) and stopped at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import program
from tests.servers import free_port

USER, PASSWORD, DATABASE = "rnnbench", "s3cret-for-tests", "mlflow"


@dataclass(frozen=True)
class Postgres:
    port: int

    @property
    def uri(self) -> str:
        """The backend store URI as params.yaml holds it: no password (libpq reads PGPASSWORD)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"


def as_owner(folder: Path) -> dict:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` user
    (Debian's package makes it) and give it the folder."""
    if os.geteuid() != 0:
        return {}
    shutil.chown(folder, "postgres", "postgres")
    return {"user": "postgres", "group": "postgres"}


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A cluster in a folder of its own under the system's temporary directory (pytest's are
    private to root, and the server runs as `postgres`), removed afterwards."""
    initdb = program("initdb", "a real PostgreSQL for the team server's tests; Debian package "
                               "postgresql")
    bin_dir = Path(os.path.realpath(initdb)).parent
    folder = Path(tempfile.mkdtemp(prefix="rnnbench-postgres-"))
    owner = as_owner(folder)
    data, pwfile = folder / "data", folder / "pw"
    pwfile.write_text(PASSWORD)
    if owner:
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run([initdb, "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
                    "-A", "scram-sha-256", "--no-sync"], check=True, capture_output=True,
                   **owner)
    port = free_port()
    log = folder / "server.log"
    subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "start",
                    "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"],
                   check=True, capture_output=True, **owner)
    try:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U",
                        USER, DATABASE], check=True, capture_output=True, env=env)
        yield Postgres(port)
    finally:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, **owner)
        shutil.rmtree(folder, ignore_errors=True)
