"""One scheduled retraining round in the current clone (`rnnbench retrain`, `make retrain`):

1. refuse a dirty work tree, a missing DVC remote or an unreachable tracking store;
2. `dvc pull` what earlier rounds pushed (nothing yet on the first round);
3. re-read every source without a pinned hash (its download stage forced; its output changes
   only when the content did, so only what is downstream of changed data reruns);
4. `dvc repro`, then `dvc push`: any clone can `dvc pull` the exact models;
5. promote each retrained task's winner (promote.py) and write reports/retrain.md.

Registration comes after the push, so a failed push registers nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline import tracking
from pipeline.config import Params, load_params
from pipeline.data.prepare import task_source
from pipeline.errors import fail
from pipeline.files import atomic_file, read_json
from pipeline.paths import Layout, reports_dir
from pipeline.retrain.promote import Decision, promote

STAGE_RAN = re.compile(r"^Running stage '([^']+)'")
REPORT = "retrain.md"


def dvc(root: Path, *args: str, echo: bool = True) -> str:
    """Run a DVC command in `root`, its output echoed to stderr; one line naming the command
    and DVC's own reason where it fails."""
    proc = subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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


@dataclass(frozen=True)
class DataState:
    """One task's downloaded data: its hash in dvc.lock and what the download recorded."""

    md5: str
    examples: int | None
    sha256: str


def data_state(params: Params, root: Path) -> dict[str, DataState]:
    lock_file = root / "dvc.lock"
    lock = yaml.safe_load(lock_file.read_text()) if lock_file.exists() else {}
    stages = (lock or {}).get("stages", {})
    out = {}
    for task in params.tasks:
        outs = stages.get(f"download@{task}", {}).get("outs", [])
        source = Layout(root, task).raw / "source.json"
        recorded: dict[str, Any] = read_json(source) if source.exists() else {}
        out[task] = DataState(outs[0]["md5"] if outs else "", recorded.get("examples"),
                              recorded.get("sha256", ""))
    return out


@dataclass
class Round:
    started: str
    commit: str
    remote: str
    refreshed: list[str]  # tasks whose unpinned source was read again
    before: dict[str, DataState]
    after: dict[str, DataState]
    ran: list[str]  # stages `dvc repro` ran
    metrics_diff: str
    decisions: list[Decision]
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.ran)


def run_round(params_file: Path, root: Path) -> Round:
    start = time.perf_counter()
    remote = preflight(root)
    params = load_params(params_file)
    client = tracking.client_for(params, root)  # a tracking server that is down stops here
    dvc(root, "pull", "--allow-missing")
    before = data_state(params, root)
    refreshed = [t for t in params.tasks if not task_source(params.for_task(t).data).pin.value]
    for task in refreshed:
        dvc(root, "repro", "--force", "--single-item", f"download@{task}")
    log = dvc(root, "repro")
    ran = [m.group(1) for line in log.splitlines() if (m := STAGE_RAN.match(line))]
    after = data_state(params, root)
    dvc(root, "push")  # also what an earlier round left unpushed: cheap when all is there
    commit = git(root, "rev-parse", "HEAD")
    decisions = [promote(client, params.for_task(t), Layout(root, t), commit)
                 for t in params.tasks if any(s.startswith(f"train@{t}-") for s in ran)]
    diff = dvc(root, "metrics", "diff", "--md", echo=False) if ran else ""
    result = Round(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit, remote,
                   refreshed, before, after, ran, diff, decisions,
                   round(time.perf_counter() - start, 1))
    write_summary(result, reports_dir(root) / REPORT)
    return result


def _short(digest: str) -> str:
    return digest[:12] or "-"


def summary_lines(r: Round) -> list[str]:
    lines = [f"# Retraining round, {r.started}", "",
             f"Commit `{r.commit[:12]}`, DVC remote `{r.remote}`, {r.seconds:.0f} s.", ""]
    if not r.changed:
        lines += ["**Nothing changed**: the data, code and params are those of the last round, "
                  "so no stage ran and nothing was registered.", ""]
    lines += ["## Data", "", "| task | examples before | after | data before | after | |",
              "|---|---:|---:|---|---|---|"]
    for task, old in r.before.items():
        new = r.after[task]
        note = "re-read, " if task in r.refreshed else ""
        note += "changed" if old.md5 != new.md5 else "unchanged"
        lines.append(f"| {task} | {old.examples if old.examples is not None else '-'} | "
                     f"{new.examples if new.examples is not None else '-'} | "
                     f"`{_short(old.md5)}` | `{_short(new.md5)}` | {note} |")
    lines += ["", "## Stages that ran", ""]
    lines += [f"- `{s}`" for s in r.ran] or ["None."]
    if r.metrics_diff.strip():
        diff = r.metrics_diff.strip()
        cut = 40_000  # a pull request's body holds 65,536 characters
        lines += ["", "## Metrics against the last round (`dvc metrics diff`)", "",
                  diff if len(diff) <= cut else diff[:cut] + "\n\n(cut; run `dvc metrics diff`)"]
    lines += ["", "## Promotion", ""]
    if not r.decisions:
        lines.append("No task was retrained: nothing registered.")
    for d in r.decisions:
        lines.append(f"- **{d.task}**: {d.words()}")
    return [*lines, ""]


def write_summary(r: Round, path: Path) -> None:
    with atomic_file(path) as fh:
        fh.write("\n".join(summary_lines(r)))
