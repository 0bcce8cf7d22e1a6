"""How the compared settings' defaults are chosen: on the validation split, never the test split.

For each setting below, every candidate value trains every cell once (seed 42, the default
run's seed) on the task's training split, starting from the committed params.yaml with only
that setting changed, and is scored by its best validation epoch (the train record's
`best_val`: validation accuracy, or entity F1 for NER). The default is the candidate with the
best mean over the cells: the cells are compared at shared settings, so a default must not be
chosen on one of them. One setting at a time, from the current defaults; no test split is
read. A candidate replaces the current value only if its mean beats the current one's by more
than the validation score's standard error (binomial, over the validation examples, or over
its gold entities for entity F1, divided by sqrt(cells) for the mean over cells): one seed on
one validation split cannot tell smaller gaps from noise. The results go to
benchmarks/results/defaults_<machine>.json, from which docs/defaults.md's table is generated
(`python -m pipeline.docs`).

    python -m benchmarks.defaults --data DIR [--only TASK.KEY ...] [--jobs 2]

DIR is a project whose `dvc repro` has prepared the default tasks (data/<task>/raw and
prepared); each candidate trains in a scratch project beside it. Run nothing timed meanwhile.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / f"defaults_{platform.machine()}.json"

# (task, section, key, candidates): the settings that were once picked by a comparison
CHOICES: list[tuple[str, str, str, list[Any]]] = [
    ("sentiment", "model", "pooling", ["mean", "max", "last"]),
    ("sentiment", "train", "lr", [0.001, 0.002, 0.004]),
    ("sentiment", "model", "dropout", [0.3, 0.6]),
    ("sentiment", "prepare", "min_freq", [1, 2]),
    ("pos", "model", "char_filters", [0, 30]),
    ("pos", "model", "dropout", [0.3, 0.6]),
    ("ner", "train", "batch_size", [16, 64]),
    ("ner", "model", "dropout", [0.3, 0.6]),
]


def current(params: dict[str, Any], task: str, section: str, key: str) -> Any:
    """The value params.yaml gives the task: its own override, else the shared section's."""
    own = (params["task"][task].get(section) or {})
    return own[key] if key in own else params[section][key]


def project(scratch: Path, data: Path, params: dict[str, Any], task: str, section: str,
            key: str, value: Any) -> Path:
    """A scratch project: params.yaml with one setting changed, the task's data linked (or,
    for a prepare setting, prepared anew)."""
    folder = scratch / f"{task}-{key}-{value}"
    changed = json.loads(json.dumps(params))
    changed["tasks"] = [task]
    changed["longrange"]["problems"] = []
    changed["task"][task].setdefault(section, {})
    changed["task"][task][section] = {**(changed["task"][task][section] or {}), key: value}
    (folder / "data" / task).mkdir(parents=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    (folder / "data" / task / "raw").symlink_to(data / "data" / task / "raw")
    if section == "prepare":
        subprocess.run([sys.executable, "-m", "stages.prepare", task], cwd=folder, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    else:
        (folder / "data" / task / "prepared").symlink_to(data / "data" / task / "prepared")
    return folder


def standard_error(data: Path, task: str, score: float, cells: int) -> float:
    """A mean-over-cells validation score's binomial standard error: over the validation
    examples, or for BIO tags over its gold entities."""
    stats = json.loads((data / "data" / task / "prepared" / "stats.json").read_text())
    val = stats["splits"]["val"]
    entities = sum(n for label, n in val["label_counts"].items() if label.startswith("B-"))
    n = entities or val["examples"]
    return math.sqrt(score * (1 - score) / n / cells)


def decide(choice: dict[str, Any], data: Path) -> dict[str, Any]:
    """The choice's means over cells, the best candidate, and the value chosen by the rule
    above (the current one unless beaten by more than a standard error)."""
    table = choice["validation"]
    means = {v: sum(cells.values()) / len(cells) for v, cells in table.items()}
    now = str(choice["current"])
    best = max(means, key=means.__getitem__)
    se = standard_error(data, choice["task"], means[now], len(next(iter(table.values()))))
    chosen = best if means[best] - means[now] > se else now
    value = {str(v): v for v in [choice["current"], *[yaml.safe_load(k) for k in table]]}
    print(f"{choice['task']} {choice['section']}.{choice['key']}: "
          + ", ".join(f"{v} {100 * m:.2f}" for v, m in means.items())
          + f" (se {100 * se:.2f}) -> {chosen}", flush=True)
    return {**choice, "mean": {v: round(m, 4) for v, m in means.items()},
            "best": value[best], "standard_error": round(se, 4), "chosen": value[chosen]}


def fit(folder: Path, task: str, cell: str) -> float:
    """Train one cell as stage train@ does; its best validation score."""
    subprocess.run([sys.executable, "-m", "pipeline.cli", "train", cell, "--task", task],
                   cwd=folder, check=True, capture_output=True,
                   env={**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
                        "PYTHONPATH": str(ROOT)})
    record = json.loads(next((folder / "models" / task / cell).glob("seed*/train.json"))
                        .read_text())
    return float(record["best_val"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--only", nargs="*", default=None, help="TASK.KEY, e.g. sentiment.lr")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--decide-only", action="store_true",
                        help="apply the rule to the stored scores again; no fit")
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    done = json.loads(OUT.read_text()) if OUT.exists() else {"choices": []}
    if args.decide_only:
        done["choices"] = [decide(c, args.data) for c in done["choices"]]
        OUT.write_text(json.dumps(done, indent=2) + "\n")
        return
    keep = [c for c in done["choices"]
            if args.only is not None and f"{c['task']}.{c['key']}" not in args.only]
    scratch = Path(tempfile.mkdtemp(prefix="rnnbench-defaults-"))
    try:
        for task, section, key, values in CHOICES:
            if args.only is not None and f"{task}.{key}" not in args.only:
                continue
            jobs = [(value, cell) for value in values for cell in params["cells"]]
            folders = {v: project(scratch, args.data.resolve(), params, task, section, key, v)
                       for v in values}
            with ThreadPoolExecutor(args.jobs) as pool:
                scores = list(pool.map(fit, [folders[v] for v, _ in jobs], [task] * len(jobs),
                                       [cell for _, cell in jobs]))
            table = {str(v): {c: round(s, 4) for (v2, c), s in zip(jobs, scores, strict=True)
                              if v2 == v} for v in values}
            keep.append(decide({"task": task, "section": section, "key": key,
                                "current": current(params, task, section, key),
                                "validation": table}, args.data))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    OUT.write_text(json.dumps({"machine": platform.machine(), "seed": params["seeds"][0],
                               "choices": keep}, indent=2) + "\n")


if __name__ == "__main__":
    main()
