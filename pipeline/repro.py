"""`rnnbench repro` (`make run`): `dvc repro` with independent stages side by side.

DVC runs one stage at a time, and one fit gains little from a second core (1.18x from two
threads at the default sizes on the 2-core CI machine), while two fits side by side with one
thread each finish 1.36x sooner than one after the other. DVC allows exactly that: a
`dvc repro` releases the repository's lock while a stage's command runs, and
`--wait-for-lock` queues the rest. So this module asks DVC which stages are out of date,
adds everything downstream of them, and starts each with `dvc repro --single-item` once all
it depends on has finished, at most `jobs` at a time. Outputs, dvc.lock and the run cache are
DVC's own, as a plain `dvc repro` leaves them; the numbers do not depend on the order, since
`train.threads` fixes each fit's threads.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import RnnbenchError, fail
from pipeline.warm import warm_server

HINT_START, HINT_END = "To track the changes with git", "Use `dvc push`"


def default_jobs() -> int:
    """One stage per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


@dataclass
class Plan:
    """The stages to run, in dvc.yaml's order, and which of them each one waits for."""

    order: list[str]
    needs: dict[str, set[str]]


def read_dag(root: Path, status: bool = True) -> tuple[Any, dict[str, Any], set[str]]:
    """DVC's stage graph (edges run from a stage to the stages it depends on), the stages by
    name in dvc.yaml's order, and (with `status`) the names of those DVC reports changed."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo, lock_repo

    try:
        # one lock for all: DVC reads dvc.yaml and params.yaml again at each lock (0.4 s)
        with Repo(str(root)) as repo, lock_repo(repo):
            changed = set(repo.status()) if status else set()
            return repo.index.graph, {s.addressing: s for s in repo.index.stages}, changed
    except DvcException as err:
        fail(f"dvc: {err}")


def upstream(root: Path, stage: str) -> list[str]:
    """`stage` and every stage it depends on, in dvc.yaml's order."""
    import networkx as nx

    graph, stages, _ = read_dag(root, status=False)
    if stage not in stages:
        fail(f"{stage}: no such stage in dvc.yaml (`dvc stage list` names them)")
    needed = {stage} | {s.addressing for s in nx.descendants(graph, stages[stage])}
    return [n for n in stages if n in needed]


def plan(root: Path, targets: Sequence[str] = ()) -> Plan:
    """What `dvc repro [targets]` would run: the stages DVC reports changed and every stage
    downstream of one, limited to the targets and what they depend on."""
    import networkx as nx

    graph, stages, changed = read_dag(root)
    stale = set(changed)
    for stage_name in changed:
        stale |= {s.addressing for s in nx.ancestors(graph, stages[stage_name])}
    if targets:
        wanted: set[str] = set()
        for target in targets:
            picked = [n for n in stages if target in (n, n.split("@")[0])]
            if not picked:
                fail(f"{target}: no such stage in dvc.yaml (`dvc stage list` names them)")
            for n in picked:
                wanted |= {n} | {s.addressing for s in nx.descendants(graph, stages[n])}
        stale &= wanted
    order = [n for n in stages if n in stale]
    needs = {n: {s.addressing for s in nx.descendants(graph, stages[n])} & stale
             for n in order}
    return Plan(order, needs)


@dataclass
class Lane:
    """One `dvc repro --single-item` process (of one stage, or a batch of note-only ones), its
    output echoed line by line."""

    stages: list[str]
    proc: subprocess.Popen[str]
    started: float = field(default_factory=time.perf_counter)
    last_error: str = ""

    @property
    def stage(self) -> str:
        return self.stages[0] + (f" (+{len(self.stages) - 1})" if len(self.stages) > 1 else "")


def note_only(root: Path) -> set[str]:
    """The stage groups whose stages only write a note with the current params: `tune` while
    tuning is off. Each stage is a second of work in 4-5 s of starting DVC, so they run as one
    `dvc repro` per group."""
    from pipeline.config import load_params

    try:
        return set() if load_params(root / "params.yaml").tune.enabled else {"tune"}
    except RnnbenchError:  # a bad params.yaml: the stages report it, each as one line
        return set()


class Runner:
    def __init__(self, root: Path, prefix: bool, env: dict[str, str]):
        self.root, self.prefix, self.env = root, prefix, env
        self.finished: queue.Queue[Lane] = queue.Queue()
        self.print_lock = threading.Lock()

    def start(self, stages: list[str]) -> Lane:
        # Its own process group: a Ctrl-C reaches DVC and the stage through us exactly once.
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", *stages],
            cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env}, process_group=0)
        lane = Lane(stages, proc)
        threading.Thread(target=self._echo, args=(lane,), daemon=True).start()
        return lane

    def _echo(self, lane: Lane) -> None:
        assert lane.proc.stdout is not None
        head = f"{lane.stage} | " if self.prefix else ""
        hint = False  # DVC's closing advice (git add dvc.lock, autostage, dvc push), once per
        for line in lane.proc.stdout:  # stage here: left out
            hint = hint or line.startswith(HINT_START)
            if hint:
                hint = not line.startswith(HINT_END)
                continue
            if self.prefix and not line.strip():
                continue
            if line.startswith("ERROR"):
                lane.last_error = line.removeprefix("ERROR:").strip()
            with self.print_lock:
                print(head + line, end="", flush=True)
        lane.proc.wait()
        self.finished.put(lane)

    def say(self, text: str) -> None:
        with self.print_lock:
            print(text, flush=True)


def reproduce(root: Path, targets: Sequence[str] = (), jobs: int | None = None) -> list[str]:
    """Run what is out of date, `jobs` stages at a time (default: one per core); the stages
    that ran, in the order they finished."""
    jobs = jobs or default_jobs()
    work = plan(root, targets)
    if not work.order:
        print("Data and pipelines are up to date.")
        return []
    with warm_server(root) as env:
        return _reproduce(root, work, jobs, Runner(root, prefix=jobs > 1, env=env))


def _reproduce(root: Path, work: Plan, jobs: int, runner: Runner) -> list[str]:
    batched = note_only(root)
    pending, running, done = list(work.order), {}, []
    failed: Lane | None = None
    interrupted = False
    start = time.perf_counter()
    while pending or running:
        while not (failed or interrupted) and len(running) < jobs:
            ready = next((s for s in pending if work.needs[s] <= set(done)), None)
            if ready is None:
                break
            group = ready.split("@")[0]
            batch = [s for s in pending if s.split("@")[0] == group
                     and work.needs[s] <= set(done)] if group in batched else [ready]
            for stage in batch:
                pending.remove(stage)
            running[ready] = runner.start(batch)
        if not running:
            break
        try:
            lane = runner.finished.get()
        except KeyboardInterrupt:
            interrupted = True
            for lane in running.values():
                os.killpg(lane.proc.pid, signal.SIGINT)
            continue
        del running[lane.stages[0]]
        seconds = time.perf_counter() - lane.started
        if lane.proc.returncode == 0:
            done.extend(lane.stages)
            for stage in lane.stages:
                runner.say(f"Stage '{stage}' done in {seconds / len(lane.stages):.1f} s "
                           f"({len(done)} of {len(work.order)})")
        elif failed is None and not interrupted:
            failed = lane
    if interrupted:
        raise KeyboardInterrupt
    if failed is not None:
        reason = failed.last_error or f"exit {failed.proc.returncode}"
        fail(f"stage {failed.stage} failed: {reason} (its output is above; "
             f"{len(pending)} stage(s) not started)")
    runner.say(f"{len(done)} stage(s) in {time.perf_counter() - start:.0f} s, "
               f"{jobs} at a time")
    return done
