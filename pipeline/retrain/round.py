"""One scheduled retraining round in the current clone (`rnnbench retrain`, `make retrain`):

1. refuse a dirty work tree, a missing DVC remote or an unreachable tracking store;
2. `dvc pull` what earlier rounds pushed (nothing yet on the first round);
3. re-read every source without a pinned hash (its download stage forced; its output changes
   only when the content did, so only what is downstream of changed data reruns);
4. `dvc repro`, then `dvc push`: any clone can `dvc pull` the exact models;
5. promote each retrained task's winner (promote.py) and write reports/retrain.md.

Fanned out over machines (fanout.py), a job per task does 2-4 for its task and the final
job merges their results in before 2-5.

Registration comes after the push, so a failed push registers nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pipeline import tracking
from pipeline.config import load_params
from pipeline.data.prepare import task_source
from pipeline.errors import fail
from pipeline.files import atomic_file
from pipeline.paths import Layout, reports_dir
from pipeline.retrain.fanout import gather
from pipeline.retrain.promote import Decision, promote
from pipeline.retrain.repo import (
    STAGE_RAN,
    DataState,
    data_state,
    dvc,
    git,
    preflight,
    repro,
)

REPORT = "retrain.md"
PROMOTION = "## Promotion"


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
    pending: list[str]  # retrained tasks whose registration waits (--no-register)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.ran)


def run_round(params_file: Path, root: Path, jobs_dir: Path | None = None,
              register: bool = True) -> Round:
    """One round; with `jobs_dir`, the final job of a fanned-out round (fanout.py): the tasks
    whose jobs left their results there are merged in, not retrained here. Without `register`,
    step 5 is left to `rnnbench promote` (the workflow runs it once the pull request is open,
    so that no version is registered for a round that has none)."""
    start = time.perf_counter()
    remote = preflight(root)
    params = load_params(params_file)
    client = tracking.client_for(params, root)  # a tracking server that is down stops here
    jobs = {job.task: job for job in gather(root, jobs_dir, params)} if jobs_dir else {}
    dvc(root, "pull", "--allow-missing")  # with jobs: also the models and data they pushed
    before = data_state(params, root) | {task: job.before for task, job in jobs.items()}
    refreshed = [t for t in params.tasks if (jobs[t].refreshed if t in jobs else
                                             not task_source(params.for_task(t).data).pin.value)]
    for task in refreshed:
        if task not in jobs:  # a job re-read its own
            dvc(root, "repro", "--force", "--single-item", f"download@{task}")
    log = repro(root)
    ran = [s for job in jobs.values() for s in job.ran]
    ran += [m.group(1) for line in log.splitlines() if (m := STAGE_RAN.match(line))]
    after = data_state(params, root)
    dvc(root, "push")  # also what an earlier round left unpushed: cheap when all is there
    commit = git(root, "rev-parse", "HEAD")
    retrained = [t for t in params.tasks if any(s.startswith(f"train@{t}-") for s in ran)]
    decisions = [promote(client, params.for_task(t), Layout(root, t), commit)
                 for t in retrained] if register else []
    diff = dvc(root, "metrics", "diff", "--md", echo=False) if ran else ""
    result = Round(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit, remote,
                   refreshed, before, after, ran, diff, decisions,
                   [] if register else retrained,
                   round(time.perf_counter() - start, 1))
    write_summary(result, reports_dir(root) / REPORT)
    return result


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _short(digest: str) -> str:
    return digest[:12] or "-"


def summary_lines(r: Round) -> list[str]:
    lines = [f"# Retraining round, {r.started}", "",
             f"Commit `{r.commit[:12]}`, DVC remote `{r.remote}`, {r.seconds:.0f} s.", ""]
    if not r.changed:
        lines += ["**Nothing changed**: the data, code and params are those of the last round, "
                  "so no stage ran and nothing was registered.", ""]
    lines += ["## Data", "", "| task | examples before | after | test split before | after "
              "| data before | after | |", "|---|---:|---:|---:|---:|---|---|---|"]
    for task, old in r.before.items():
        new = r.after[task]
        note = "re-read, " if task in r.refreshed else ""
        note += "changed" if old.md5 != new.md5 else "unchanged"
        lines.append(f"| {task} | {_count(old.examples)} | {_count(new.examples)} | "
                     f"{_count(old.test_examples)} | {_count(new.test_examples)} | "
                     f"`{_short(old.md5)}` | `{_short(new.md5)}` | {note} |")
    lines += ["", "## Stages that ran", ""]
    lines += [f"- `{s}`" for s in r.ran] or ["None."]
    lines += ["", PROMOTION, ""]
    if r.pending:
        lines.append(f"Waiting for this round's pull request: `rnnbench promote` judges and "
                     f"registers the winners of {', '.join(r.pending)} once it is open, and "
                     "writes its decisions here.")
    else:
        lines += promotion_lines([(d.task, d.words()) for d in r.decisions])
    if r.metrics_diff.strip():
        diff = r.metrics_diff.strip()
        cut = 40_000  # a pull request's body holds 65,536 characters
        moved = [t for t, old in r.before.items() if old.md5 != r.after[t].md5
                 or old.test_examples != r.after[t].test_examples]
        lines += ["", "## Each round's models on its own test split (`dvc metrics diff`)", "",
                  (f"Not one comparison: the data of {', '.join(moved)} changed, so old and "
                   "new rows score different test examples (their counts are above); the "
                   "promotion above is the like-with-like comparison." if moved else
                   "The data is unchanged: old and new rows score the same test examples, "
                   "unless `data` params changed."),
                  "", diff if len(diff) <= cut else
                  f"{diff[:cut]}\n\n(cut; run `dvc metrics diff`)"]
    return [*lines, ""]


def promotion_lines(decided: list[tuple[str, str]]) -> list[str]:
    """The Promotion section's body: a line per task, then how it was judged."""
    if not decided:
        return ["No task was retrained: nothing registered."]
    return [*(f"- **{task}**: {words}" for task, words in decided), "",
            "Both models are scored on the same test examples, those neither trained nor "
            "validated on; a challenger is registered only if it beats always predicting its "
            "most frequent training label."]


def write_promotion(path: Path, decided: list[tuple[str, str]]) -> None:
    """Replace the Promotion section of the round summary at `path` (`rnnbench promote
    --summary`, after a round run with --no-register)."""
    if not path.is_file() or PROMOTION not in (text := path.read_text(encoding="utf-8")):
        fail(f"{path}: no round summary with a '{PROMOTION}' section; run `rnnbench retrain` "
             "first")
    head, _, rest = text.partition(PROMOTION)
    tail = rest[rest.find("\n## "):] if "\n## " in rest else "\n"
    with atomic_file(path) as fh:
        fh.write(head + "\n".join([PROMOTION, "", *promotion_lines(decided)]) + "\n" + tail)


def write_summary(r: Round, path: Path) -> None:
    with atomic_file(path) as fh:
        fh.write("\n".join(summary_lines(r)))
