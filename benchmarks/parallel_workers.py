"""The default sentiment comparison trained by DVC's own queue with 1 and then 2 workers, into
one tracking server, timed; and what landed there: runs expected, landed, duplicated.

Run inside a project whose environment is built (`make env`), against a running tracking server
(`rnnbench server`; MLFLOW_TRACKING_URI), with nothing else running:

    python -m benchmarks.parallel_workers [--workers 1 2] [--out benchmarks/results]

Each worker count queues one experiment per cell (`dvc exp run --queue -S cells=[CELL] ...`,
forced, so that nothing comes from DVC's run cache) under its own seed, starts
`dvc queue start -j N`, and waits until the queue is empty. Each fit uses `train.threads`
PyTorch threads (1 by default), so N workers on N cores do not slow each other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
import urllib.request
from pathlib import Path

CELLS = ("rnn", "lstm", "gru")
TASK = "sentiment"


def dvc(*args: str) -> str:
    out = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed: {out.stderr.strip()[-2000:]}")
    return out.stdout


def queue_states() -> dict[str, int]:
    """How many queued experiments are in each state (Queued, Running, Success, Failed)."""
    counts: dict[str, int] = {}
    for line in dvc("queue", "status").splitlines():
        for state in ("Queued", "Running", "Success", "Failed"):
            if f" {state}" in line:
                counts[state] = counts.get(state, 0) + 1
    return counts


def api(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def landed(base: str, seed: int) -> dict[str, object]:
    """The cell runs of `seed` on the server, their parents, and any cell logged twice."""
    exps = api(base, "experiments/search", {"max_results": 1000})["experiments"]
    exp = next(e["experiment_id"] for e in exps if e["name"] == TASK)
    runs = api(base, "runs/search", {
        "experiment_ids": [exp], "max_results": 1000,
        "filter": f"tags.`rnnbench.kind` = 'cell' and tags.`rnnbench.seed` = '{seed}'"})
    tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs.get("runs", [])]
    cells = [t["rnnbench.cell"] for t in tags]
    return {"expected": len(CELLS), "landed": len(cells),
            "duplicates": len(cells) - len(set(cells)),
            "comparison_runs": len({t["mlflow.parentRunId"] for t in tags})}


def measure(workers: int, seed: int, base: str) -> dict[str, object]:
    for cell in CELLS:
        dvc("exp", "run", "--queue", "-f", "-S", f"tasks=[{TASK}]", "-S",
            "longrange.problems=[]", "-S", f"seeds=[{seed}]", "-S", f"cells=[{cell}]")
    start = time.perf_counter()
    dvc("queue", "start", "-j", str(workers))
    while True:
        time.sleep(2)
        states = queue_states()
        if not states.get("Queued") and not states.get("Running"):
            break
    seconds = time.perf_counter() - start
    return {"workers": workers, "seed": seed, "wall_seconds": round(seconds, 1),
            "queue": states, **landed(base, seed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    base = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not base.startswith("http"):
        raise SystemExit("set MLFLOW_TRACKING_URI to the tracking server (rnnbench server)")
    dvc("queue", "remove", "--all")
    results = []
    for i, n in enumerate(args.workers):
        results.append(measure(n, 100 + i, base))
        print(json.dumps(results[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"parallel_workers_{platform.machine()}.json"
    out.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                               "task": TASK, "cells": CELLS, "runs": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
