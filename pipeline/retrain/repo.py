"""The clone a retraining round runs in: git and DVC commands with one-line failures, the
checks before a round, and each task's downloaded data as dvc.lock records it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from pipeline.config import Params
from pipeline.data.records import SOURCE_FILE, STATS_FILE, read_source, read_stats
from pipeline.errors import fail
from pipeline.paths import Layout
from pipeline.warm import warm_server

STAGE_RAN = re.compile(r"^Running stage '([^']+)'")


def dvc(root: Path, *args: str, echo: bool = True, env: dict[str, str] | None = None) -> str:
    """Run a DVC command in `root` (with `env` added to the environment), its output echoed to
    stderr; one line naming the command and DVC's own reason where it fails."""
    proc = subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **env} if env else None)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            print(line, end="", file=sys.stderr, flush=True)
    if proc.wait() != 0:
        errors = [ln.strip().removeprefix("ERROR:").strip() for ln in lines
                  if ln.startswith("ERROR")] or [ln.strip() for ln in lines if ln.strip()]
        fail(f"dvc {' '.join(args)}: {(errors or ['failed'])[-1]}")
    return "".join(lines)


def repro(root: Path, *targets: str) -> str:
    """`dvc repro` with its stages started warm (pipeline/warm.py): a round's stages would
    otherwise each spend 8-9 s importing PyTorch, Lightning and MLflow."""
    with warm_server(root) as env:
        return dvc(root, "repro", *targets, env=env)


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        fail(f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'} (in {root})")
    return proc.stdout.strip()


def preflight(root: Path) -> str:
    """The default DVC remote's name, after refusing what would leave a round half done."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "remote", "default"], cwd=root,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        fail("no DVC remote configured: add one with `dvc remote add -d storage "
             "s3://BUCKET/PATH` (or a folder path) and commit .dvc/config, or put it in "
             ".dvc/config.local")
    dirty = git(root, "status", "--porcelain", "--untracked-files=no")
    if dirty:
        fail(f"{root.resolve()}: the work tree has uncommitted changes "
             f"({dirty.splitlines()[0].strip()}, ...); commit or stash them first: a round's "
             "results must belong to one commit")
    return proc.stdout.strip()


class DataState(BaseModel):
    """One task's downloaded data: its hash in dvc.lock and what the download recorded."""

    model_config = ConfigDict(frozen=True)

    md5: str
    examples: int | None
    sha256: str
    test_examples: int | None = None  # the prepared test split's, where it is prepared


def data_state(params: Params, root: Path) -> dict[str, DataState]:
    lock_file = root / "dvc.lock"
    lock = yaml.safe_load(lock_file.read_text()) if lock_file.exists() else {}
    stages = (lock or {}).get("stages", {})
    out = {}
    for task in params.tasks:
        outs = stages.get(f"download@{task}", {}).get("outs", [])
        layout = Layout(root, task)
        raw, prepared = layout.raw, layout.prepared
        recorded = read_source(raw) if (raw / SOURCE_FILE).exists() else None
        out[task] = DataState(md5=outs[0]["md5"] if outs else "",
                              examples=recorded.examples if recorded else None,
                              sha256=recorded.sha256 if recorded else "",
                              test_examples=read_stats(prepared).splits["test"].examples
                              if (prepared / STATS_FILE).exists() else None)
    return out
