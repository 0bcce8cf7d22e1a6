"""MLflow runs: comparison (parent) runs and per-cell runs, their tags and metrics.

Runs are grouped per comparison: the cells trained from the same data, shared settings and
git commit are nested under one parent run, found (or made) by a key tag. A retrained cell
(say, after a per-cell override) adds its new run under the same parent; the report names
the exact runs it summarizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.config import CellParams, TaskParams
from pipeline.errors import fail, redact
from pipeline.tracking.store import call, client_for, experiment_id, runs_in_store, store_errors

TAG = "rnnbench"
COMPARISON_TAG = f"{TAG}.comparison"
PARENT_TAG = "mlflow.parentRunId"


PIPELINE_OUTPUTS = ("dvc.lock", "metrics", "reports")  # git-tracked, rewritten by each run


def git_info(root: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                 timeout=10, check=False)
            return out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            return ""

    # The pipeline's own outputs (dvc.lock, metrics/, reports/) change in every run: only
    # edits elsewhere (code, params.yaml, dvc.yaml) make the code differ from the commit.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){path}" for path in PIPELINE_OUTPUTS))
    return {"commit": git("rev-parse", "HEAD") or "unknown",
            "dirty": "true" if changed else "false"}


def flatten(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    return {f"{prefix}.{k}": str(v) for k, v in values.items()}


def comparison_key(params: TaskParams, data_hash: str, commit: str) -> str:
    """What makes cells comparable: same task, data, shared settings and code."""
    shared = {"task": params.name, "data": params.data.model_dump(),
              "prepare": params.prepare.model_dump(), "model": params.model.model_dump(),
              "train": params.train.model_dump(), "data_hash": data_hash, "commit": commit}
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:16]


# A comparison's parent run is made once, by whichever worker claims it first: MLflow has no
# unique constraint on tags, but experiment names are unique in its database (sqlite or
# PostgreSQL alike), so creating the experiment `CLAIMS/<experiment id>/<key>` is an atomic
# test-and-set. The winner makes the parent run and deletes the claim (a deleted experiment
# keeps its name taken and leaves the UI's list); the others wait for the parent to appear.
# Searching and then creating, as before, let two workers starting together make one each.
CLAIMS = "rnnbench-claims"
CLAIM_WAIT_SECONDS = 60.0


def find_comparison(client: MlflowClient, exp_id: str, key: str) -> str | None:
    """The comparison run with this key: the earliest, should a store hold several (made by
    racing workers before claims existed), so that every worker picks the same one."""
    found = call("searching runs", client.tracking_uri, client.search_runs, [exp_id],
                 filter_string=f"tags.`{COMPARISON_TAG}` = '{key}'",
                 order_by=["attributes.start_time ASC"], max_results=1)
    return found[0].info.run_id if found else None


def claim(client: MlflowClient, name: str) -> str | None:
    """Take `name` for this process: the claim's experiment id, or None if another has it."""
    try:
        return client.create_experiment(name, tags={f"{TAG}.kind": "claim"})
    except MlflowException as err:
        if err.error_code == "RESOURCE_ALREADY_EXISTS":
            return None
        raise


def comparison_run(client: MlflowClient, exp_id: str, params: TaskParams, data_hash: str,
                   git: dict[str, str]) -> str:
    """The parent run of this comparison: found, or made exactly once however many workers
    ask at the same moment."""
    key = comparison_key(params, data_hash, git["commit"])
    uri = client.tracking_uri
    if found := find_comparison(client, exp_id, key):
        return found
    claimed = call("claiming the comparison", uri, claim, client, f"{CLAIMS}/{exp_id}/{key}")
    if claimed is None:  # another worker is making it
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if found := find_comparison(client, exp_id, key):
                return found
        fail(f"MLflow store {uri}: comparison {key} was claimed by another worker that made "
             f"no run within {CLAIM_WAIT_SECONDS:.0f} s; if that worker died, delete the "
             f"experiment {CLAIMS}/{exp_id}/{key} for good (`mlflow gc`) and rerun")
    tags = {COMPARISON_TAG: key, f"{TAG}.kind": "comparison", f"{TAG}.task": params.name,
            f"{TAG}.dataset": params.data.dataset,
            "mlflow.source.git.commit": git["commit"], f"{TAG}.git_dirty": git["dirty"],
            f"{TAG}.data_hash": data_hash}
    run = call("creating the comparison run", uri, client.create_run, exp_id,
               run_name=f"{params.name} {git['commit'][:8]} {key[:6]}", tags=tags)
    shared = {**flatten("data", params.data.model_dump()),
              **flatten("prepare", params.prepare.model_dump()),
              **flatten("model", params.model.model_dump()),
              **flatten("train", params.train.model_dump())}  # not `cells`: workers may split them
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in shared.items()])
    client.set_terminated(run.info.run_id, "FINISHED")
    call("releasing the claim", uri, client.delete_experiment, claimed)
    return run.info.run_id


def start_cell_run(params: TaskParams, cp: CellParams, data_hash: str, root: Path,
                   extra_params: dict[str, Any], settings: str | None = None
                   ) -> tuple[MlflowClient, str, str]:
    """Create the run for one trained cell and seed, nested under its comparison (which
    every seed shares), before any training: a store that cannot take it fails first, in one
    line. `cp`: the settings it trains at; `settings`: with tuning on, "tuned" or "untuned"
    (tag `rnnbench.settings`). Returns the client, the run id and the comparison's run id."""
    client = client_for(params, root)
    with store_errors(client.tracking_uri, "starting the run"):
        return _start_cell_run(client, params, cp, data_hash, root, extra_params, settings)


def _start_cell_run(client: MlflowClient, params: TaskParams, cp: CellParams,
                    data_hash: str, root: Path, extra_params: dict[str, Any],
                    settings: str | None) -> tuple[MlflowClient, str, str]:
    exp_id = experiment_id(client, params.experiment, root)
    git = git_info(root)
    parent = comparison_run(client, exp_id, params, data_hash, git)
    cell, seed = cp.cell, cp.seed
    end_stale_runs(client, exp_id, params.name, cell, seed)
    tags = {PARENT_TAG: parent, f"{TAG}.kind": "cell", f"{TAG}.cell": cell,
            f"{TAG}.task": params.name, f"{TAG}.seed": str(seed),
            f"{TAG}.dataset": params.data.dataset, f"{TAG}.data_hash": data_hash,
            "mlflow.source.git.commit": git["commit"], f"{TAG}.git_dirty": git["dirty"],
            "mlflow.source.type": "LOCAL", "mlflow.source.name": "stages/train.py",
            f"{TAG}.torch": metadata.version("torch"),  # the one PyTorch is too, unloaded
            f"{TAG}.lightning": metadata.version("pytorch-lightning"),
            f"{TAG}.mlflow": mlflow.__version__, f"{TAG}.python": platform.python_version(),
            f"{TAG}.host": platform.node(), f"{TAG}.pid": str(os.getpid())}
    if exp := os.environ.get("DVC_EXP_NAME"):
        tags[f"{TAG}.dvc_exp"] = exp
    if settings:
        tags[f"{TAG}.settings"] = settings
    name = f"{params.name}/{cell}/seed{seed}" + (" (untuned)" if settings == "untuned" else "")
    run = client.create_run(exp_id, run_name=name, tags=tags)
    run_id = run.info.run_id
    values = {"task": params.name, "cell": cell, "seed": seed,
              **flatten("data", params.data.model_dump()),
              **flatten("prepare", params.prepare.model_dump()),
              **flatten("model", cp.model.model_dump()), **flatten("train", cp.train.model_dump()),
              **{k: str(v) for k, v in extra_params.items()}}
    client.log_batch(run_id, params=[Param(k, v) for k, v in values.items()])
    lineage = MlflowDataset(name=params.data.dataset, digest=data_hash[:32],
                            source_type="local", source=str(root / "data" / params.name))
    inputs = [DatasetInput(lineage, [InputTag("mlflow.data.context", "train")])]
    try:
        client.log_inputs(run_id, inputs)
    except MlflowException:
        # Workers starting together log the same dataset: MLflow looks it up, then inserts
        # it, and all but one insert hit its unique key (1 of 6 on PostgreSQL, measured). It
        # exists now: the second call links this run to it.
        client.log_inputs(run_id, inputs)
    return client, run_id, parent


def start_trial_run(params: TaskParams, cell: str, trial: int, values: dict[str, Any],
                    data_hash: str, root: Path) -> tuple[MlflowClient, str]:
    """Create the run of one tuning trial, nested under the task's comparison like the cell
    runs it precedes, with the settings it tries as params."""
    client = client_for(params, root)
    with store_errors(client.tracking_uri, "starting the trial's run"):
        exp_id = experiment_id(client, params.experiment, root)
        parent = comparison_run(client, exp_id, params, data_hash, git_info(root))
        tags = {PARENT_TAG: parent, f"{TAG}.kind": "trial", f"{TAG}.cell": cell,
                f"{TAG}.task": params.name, f"{TAG}.trial": str(trial),
                f"{TAG}.data_hash": data_hash, f"{TAG}.host": platform.node(),
                f"{TAG}.pid": str(os.getpid())}
        run = client.create_run(exp_id, run_name=f"{params.name}/{cell}/trial{trial}",
                                tags=tags)
        client.log_batch(run.info.run_id, params=[
            Param(k, str(v)) for k, v in {"cell": cell, "trial": trial, **values}.items()])
    return client, run.info.run_id


def process_gone(host: str, pid: str) -> bool:
    """Whether the process that tagged a run is certainly dead: on this host, and no such pid
    (runs of other hosts, or of live processes, may still be training)."""
    if host != platform.node() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return False


def end_stale_runs(client: MlflowClient, exp_id: str, task: str, cell: str, seed: int) -> None:
    """Mark KILLED the runs of this task, cell and seed left RUNNING by a process that died
    without a word (kill -9, a crash, a lost machine): MLflow cannot tell them from live ones."""
    mine = (f"tags.`{TAG}.task` = '{task}' and tags.`{TAG}.cell` = '{cell}' and "
            f"tags.`{TAG}.seed` = '{seed}' and attributes.status = 'RUNNING'")
    for run in client.search_runs([exp_id], filter_string=mine):
        tags = run.data.tags
        if process_gone(tags.get(f"{TAG}.host", ""), tags.get(f"{TAG}.pid", "")):
            client.set_tag(run.info.run_id, f"{TAG}.ended", "its process died (found later)")
            client.set_terminated(run.info.run_id, "KILLED")


def log_metrics(client: MlflowClient, run_id: str, values: dict[str, float],
                step: int = 0) -> None:
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
    with store_errors(client.tracking_uri, "logging metrics"):
        client.log_batch(run_id, metrics=metrics)


def log_files(client: MlflowClient, run_id: str, files: list[tuple[Path, str]]) -> None:
    """Attach (file or folder, artifact folder) pairs to a run."""
    with store_errors(client.tracking_uri, "storing artifacts"):
        for path, folder in files:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), folder)
            else:
                client.log_artifact(run_id, str(path), folder)


def end_run(client: MlflowClient, run_id: str, status: str) -> None:
    """FINISHED, FAILED or KILLED (a Ctrl-C, a killed process found later)."""
    with store_errors(client.tracking_uri, f"marking the run {status}"):
        client.set_terminated(run_id, status)


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    with store_errors(client.tracking_uri, "tagging the run"):
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def ensure_run(client: MlflowClient, run_id: str) -> None:
    """Fail in one line if the run a model was trained under is not in this store."""
    try:
        client.get_run(run_id)
    except MlflowException:
        fail(f"MLflow store {client.tracking_uri}: run {run_id} not found; evaluate against the "
             "store the model was trained with (MLFLOW_TRACKING_URI), or retrain")


def comparison_rows(params: TaskParams, comparison: str | None = None,
                    run_ids: list[str] | None = None) -> tuple[list[dict], Any]:
    """Rows for `rnnbench compare`: the given runs (those the workspace's models came from),
    else the newest run of each cell and seed in one comparison (default: the latest)."""
    client = client_for(params)
    uri = client.tracking_uri
    name = params.experiment
    exp = call("looking up the experiment", uri, client.get_experiment_by_name, name)
    if exp is None:
        fail(f"MLflow store {uri}: no experiment {name!r} yet; run `dvc repro` first")
    if run_ids and not comparison:
        if not runs_in_store(client, exp.experiment_id, run_ids):
            fail(f"MLflow store {redact(uri)}: none of this workspace's {len(run_ids)} model "
                 f"runs of {params.name!r} is there (the models were trained against another "
                 "store, or pulled); `--latest` shows this store's newest comparison, "
                 "`--comparison ID` a given one")
        children = [call(f"reading run {r}", uri, client.get_run, r) for r in run_ids]
        comparison = children[0].data.tags.get(PARENT_TAG)
    if comparison:
        parent = call(f"reading run {comparison}", uri, client.get_run, comparison)
    else:
        found = call("searching runs", uri, client.search_runs, [exp.experiment_id],
                     filter_string=f"tags.`{TAG}.kind` = 'comparison' and "
                                   f"tags.`{TAG}.task` = '{params.name}'",
                     order_by=["attributes.start_time DESC"], max_results=1)
        if not found:
            fail(f"MLflow store {uri}: no comparison runs in {name!r} yet; run `dvc repro`")
        parent = found[0]
    if not run_ids:
        children = call("searching runs", uri, client.search_runs, [exp.experiment_id],
                        filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
                        order_by=["attributes.start_time DESC"])
    rows: dict[tuple[str, str], dict] = {}
    for run in children:
        cell = run.data.tags.get(f"{TAG}.cell", "?")
        seed = run.data.tags.get(f"{TAG}.seed", "?")
        if (cell, seed) not in rows:  # newest first: keep the latest run of each cell and seed
            rows[cell, seed] = {"cell": cell, "seed": seed, "run_id": run.info.run_id,
                                **run.data.metrics}
    order = {c: i for i, c in enumerate(params.cells)}
    return sorted(rows.values(), key=lambda r: (order.get(r["cell"], 99), r["seed"])), parent
