"""Kill a process while it creates an MLflow store, at many points, then open the store as a
stage does (`tests/test_tracking.py` runs this in a process of its own: os.fork after MLflow is
imported, never inside pytest's process with PyTorch's threads).

    python -m tests.store_kills FOLDER ROUTE:STATEMENT [ROUTE:STATEMENT ...]

Each ROUTE:STATEMENT names who creates the store, `rnnbench` (its `client_for`) or `mlflow`
(MLflow alone: a store half-made by another program or an older rnnbench), and the SQL
statement at which that creator is killed (SIGKILL). Prints one JSON object: per case, whether
the creator died, and whether the store then opened and took a run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from mlflow.store.db.utils import _get_latest_schema_revision
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pipeline.config import load_params
from pipeline.tracking.store import client_for

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
statements = {"count": 0, "kill_at": 0}


@event.listens_for(Engine, "before_cursor_execute")
def _count(*_args: object, **_kwargs: object) -> None:
    statements["count"] += 1
    if statements["count"] == statements["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)


def open_as_a_stage(db: Path) -> MlflowClient:
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
    return client_for(PARAMS)


def created_by_mlflow_alone(db: Path) -> None:
    MlflowClient(f"sqlite:///{db}").search_experiments()


def forked(work: object) -> int:
    """Start `work()` in a forked child; its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            work()  # type: ignore[operator]
            os._exit(0)
        except BaseException as err:
            print(f"{type(err).__name__}: {err}"[:300], file=sys.stderr)
            os._exit(1)
    return pid


def statuses(pids: list[int]) -> list[int]:
    """Each child's exit status, in order (-9: killed)."""
    out = []
    for pid in pids:
        status = os.waitpid(pid, 0)[1]
        out.append(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    return out


def use(db: Path) -> None:
    client = open_as_a_stage(db)
    exp = client.create_experiment("after-the-kill")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "x", 1.0)
    client.set_terminated(run.info.run_id)


def main() -> None:
    folder = Path(sys.argv[1])
    _get_latest_schema_revision()  # load alembic's scripts once, before forking
    routes = {"rnnbench": open_as_a_stage, "mlflow": created_by_mlflow_alone}
    cases = [(case.replace(":", "-"), routes[case.split(":")[0]], int(case.split(":")[1]))
             for case in sys.argv[2:]]
    creators = []  # all at once: the machine's cores share the 2 s creations
    for name, create, n in cases:
        db = folder / name / "mlflow.db"
        db.parent.mkdir(parents=True)
        statements["kill_at"] = n
        creators.append(forked(lambda create=create, db=db: create(db)))
    statements["kill_at"] = 0
    killed = statuses(creators)
    opened = statuses([forked(lambda name=name: use(folder / name / "mlflow.db"))
                       for name, _, _ in cases])
    print(json.dumps({name: {"killed": k == -signal.SIGKILL, "opened": o == 0}
                      for (name, _, _), k, o in zip(cases, killed, opened, strict=True)}))


if __name__ == "__main__":
    main()
