"""A retraining round fanned out over machines (retrain.yml's matrix): one job per task, then
one final job.

A task's job (`rnnbench retrain --task T`) brings that task's stages up to date and pushes
their cached outputs (data, models) to the shared DVC remote; what git tracks of
them, their dvc.lock entries and metrics/<task>/, it leaves in `fanout/<task>/` for the
workflow to pass on as an artifact. The final job (`rnnbench retrain --gather fanout`) merges
those into its clone, pulls the models, and finishes the round as a one-machine round does:
what is left to run (the report, the synthetic sweep), the push, the promotions.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from pipeline import tracking
from pipeline.config import Params, load_params
from pipeline.config.load import yaml_error
from pipeline.config.records import read_model, write_model
from pipeline.data.prepare import task_source
from pipeline.errors import fail
from pipeline.files import atomic_dir, atomic_file, decode_utf8
from pipeline.paths import Layout
from pipeline.repro import upstream
from pipeline.retrain.repo import STAGE_RAN, DataState, data_state, dvc, preflight, repro

JOB_FILE, LOCK_FILE = "job.json", "dvc.lock"


class TaskJob(BaseModel):
    """What one task's job did (`job.json`): for the final job's round summary and
    promotions."""

    model_config = ConfigDict(frozen=True)

    task: str
    refreshed: bool  # its unpinned source was read again
    before: DataState
    after: DataState
    ran: list[str]  # stages it ran
    stages: list[str]  # the stages it brought up to date: evaluate@<task> and all upstream


def run_task_job(params_file: Path, root: Path, task: str, out: Path) -> TaskJob:
    """Bring one task up to date, push it, and leave `out/<task>/` for the final job."""
    preflight(root)
    params = load_params(params_file)
    if task not in params.tasks:
        fail(f"--task {task}: not in {params_file}'s tasks ({', '.join(params.tasks)})")
    tracking.client_for(params, root)  # a tracking server that is down stops here
    dvc(root, "pull", "--allow-missing", "--with-deps", f"evaluate@{task}")  # its own only
    before = data_state(params, root)[task]
    refreshed = not task_source(params.for_task(task).data).pin.value
    if refreshed:
        dvc(root, "repro", "--force", "--single-item", f"download@{task}")
    log = repro(root, f"evaluate@{task}")
    ran = [m.group(1) for line in log.splitlines() if (m := STAGE_RAN.match(line))]
    dvc(root, "push")  # not the run cache: no round pulls it
    job = TaskJob(task=task, refreshed=refreshed, before=before,
                  after=data_state(params, root)[task], ran=ran,
                  stages=upstream(root, f"evaluate@{task}"))
    with atomic_dir(out / task) as folder:  # whole or not at all
        shutil.copy(root / LOCK_FILE, folder / LOCK_FILE)
        shutil.copytree(Layout(root, task).metrics, folder / "metrics")
        write_model(folder / JOB_FILE, job)
    return job


def _read_job(folder: Path, params: Params) -> TaskJob:
    for name in (JOB_FILE, LOCK_FILE, "metrics"):
        if not (folder / name).exists():
            fail(f"{folder / name}: missing; a task job (`rnnbench retrain --task T`) writes "
                 f"{JOB_FILE}, {LOCK_FILE} and metrics/ there")
    job = read_model(TaskJob, folder / JOB_FILE,
                     f"run its task job again (`rnnbench retrain --task {folder.name}`)")
    if job.task not in params.tasks:
        fail(f"{folder / JOB_FILE}: task {job.task} is not in params.yaml's tasks "
             f"({', '.join(params.tasks)})")
    return job


def _read_lock(path: Path) -> Any:
    try:
        return yaml.safe_load(decode_utf8(path.read_bytes(), str(path)))
    except yaml.YAMLError as err:
        fail(f"{path}: {yaml_error(err)}; run the job that wrote it again")


def gather(root: Path, jobs_dir: Path, params: Params) -> list[TaskJob]:
    """Merge every task job's dvc.lock entries and metrics under `jobs_dir` into `root`. All
    are read and checked before anything is changed."""
    folders = sorted(p for p in jobs_dir.iterdir() if p.is_dir()) if jobs_dir.is_dir() else []
    if not folders:
        fail(f"{jobs_dir}: no task job's results in it (a folder per task, from "
             "`rnnbench retrain --task T`)")
    jobs = [_read_job(f, params) for f in folders]
    lock_file = root / LOCK_FILE
    lock = _read_lock(lock_file) if lock_file.exists() else {}
    lock = lock or {"schema": "2.0"}
    stages = lock.setdefault("stages", {})
    for folder, job in zip(folders, jobs, strict=True):
        recorded = (_read_lock(folder / LOCK_FILE) or {}).get("stages") or {}
        theirs = {name: recorded[name] for name in job.stages if name in recorded}
        if f"evaluate@{job.task}" not in theirs:
            fail(f"{folder / LOCK_FILE}: no evaluate@{job.task} entry; was the job's round "
                 "finished?")
        for name in job.stages:
            stages.pop(name, None)
        stages.update(theirs)
    for folder, job in zip(folders, jobs, strict=True):
        with atomic_dir(Layout(root, job.task).metrics) as metrics:
            shutil.copytree(folder / "metrics", metrics, dirs_exist_ok=True)
    with atomic_file(lock_file) as fh:
        yaml.safe_dump(lock, fh, sort_keys=False)
    return jobs
