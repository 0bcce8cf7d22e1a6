"""The language-modelling task on Bengio et al.'s (2003) split of the whole Brown corpus: the
first 800,000 words train, the next 200,000 validate, the rest test; words seen 3 times or
fewer in training become `<unk>`. Every cell at the task's settings, and the n-gram baselines
of the same run, through the real stages (`rnnbench repro` in a scratch project): each cell's
test perplexity against the Kneser-Ney n-gram's and against the paper's figures, with its
seconds per epoch. Hours per cell on a 2-core CPU; minutes on a GPU.

    python -m benchmarks.bengio_split [--epochs N] [--keep DIR]

Writes benchmarks/results/bengio_split_<machine>.json (docs/language_model.md quotes it).
Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / f"bengio_split_{platform.machine()}.json"
# Bengio et al. 2003, Table 1, test perplexity on their Brown split
PAPER = {"MLP10 (network mixed 50/50 with an interpolated trigram)": 252,
         "MLP9 (best network alone by validation)": 276,
         "class-based back-off trigram, 500 classes (best n-gram)": 312,
         "Kneser-Ney back-off, order 4 or 5": 321}


def scratch_project(folder: Path, epochs: int) -> None:
    """The project's code and dvc.yaml with params.yaml's language-modelling task alone, on
    the whole corpus split by word count."""
    for name in ("pipeline", "stages"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / ".dvc", folder / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tasks"] = ["lm"]
    params["longrange"]["problems"] = []
    lm = params["task"]["lm"]
    lm["data"].update(max_words=None, word_split={"train_words": 800_000,
                                                  "val_words": 200_000})
    lm["train"]["max_epochs"] = epochs
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=rnnbench", "-c", "user.email=bench@rnnbench.invalid",
                 "commit", "-qm", "bengio split"]):
        subprocess.run(cmd, cwd=folder, check=True)


def epoch_seconds(history: Path) -> list[float]:
    rows = list(csv.DictReader(history.open()))
    ends = [float(r["seconds"]) for r in rows]
    return [round(b - a, 1) for a, b in zip([0.0, *ends], ends, strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="rnnbench-bengio-"))
    folder.mkdir(parents=True, exist_ok=True)
    scratch_project(folder, args.epochs)
    start = time.perf_counter()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "pipeline.cli", "repro"], cwd=folder, env=env,
                   check=True)
    metrics = folder / "metrics" / "lm"
    seed = yaml.safe_load((folder / "params.yaml").read_text())["seeds"][0]
    summary = json.loads((folder / "reports" / "summary.json").read_text())["tasks"]["lm"]
    stats = json.loads((folder / "data" / "lm" / "prepared" / "stats.json").read_text())
    result = {
        "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - start), "epochs": args.epochs,
        "tokens": {s: v["tokens"] for s, v in stats["splits"].items()},
        "vocab_size": stats["vocab_size"],
        "cells": {cell: {"test_perplexity": round(v["perplexity"], 2),
                         "epoch_seconds": epoch_seconds(metrics / "history"
                                                        / f"{cell}-seed{seed}.csv")}
                  for cell, v in summary["cells"].items()},
        "baselines": summary["baselines"], "against_ngram": summary["against_ngram"],
        "paper_test_perplexity": PAPER,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {OUT} (project in {folder})")


if __name__ == "__main__":
    main()
