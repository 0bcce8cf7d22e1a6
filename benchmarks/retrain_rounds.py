"""docs/retraining.md's three rounds, run by hand in a fresh clone and timed: a folder DVC
remote, a local MLflow tracking server (runs and registry), and the sentiment task read from a
CSV without a pinned hash that grows between rounds 2 and 3: the default Rotten Tomatoes data's
reviews of its first 100 films, then of all 508 (the new films' rows appended). Run nothing
else meanwhile.

    python3 -m benchmarks.retrain_rounds [--out benchmarks/results] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

FIRST_FILMS = 100  # of 508: 2,385 of the 12,808 reviews

# What docs/retraining.md has the reader type, in this order.
POINT_AT_CSV = """
from ruamel.yaml import YAML
yaml = YAML()
params = yaml.load(open("params.yaml"))
params["tasks"] = ["sentiment"]
params["task"]["sentiment"]["data"] = {"dataset": "csv", "source": {"kind": "local",
    "path": "%s"}, "reader": {"text_column": "review", "label_column": "sentiment",
    "group_column": "film"}}
yaml.dump(params, open("params.yaml", "w"))
"""


def write_reviews(corpus: Path, path: Path, films: int | None) -> int:
    """The reviews of the corpus's first `films` films (None: all, the new films' rows after
    the old ones) as review, sentiment, film; returns how many."""
    with open(corpus, encoding="utf-8") as fh:  # not splitlines(): reviews hold U+2028
        rows = [json.loads(line) for line in fh]
    order = list(dict.fromkeys(r["group"] for r in rows))
    old = set(order[:films] if films is not None else order[:FIRST_FILMS])
    kept = [r for r in rows if r["group"] in old]
    if films is None:
        kept += [r for r in rows if r["group"] not in old]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["review", "sentiment", "film"])
        out.writerows((r["text"], r["label"], r["group"]) for r in kept)
    return len(kept)


def sh(cmd: str, cwd: Path, env: dict[str, str]) -> str:
    print(f"$ {cmd}", flush=True)
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=env, text=True, capture_output=True)
    print(proc.stdout[-3000:] + proc.stderr[-3000:], flush=True)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {cmd}")
    return proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="rnnbench-retrain-"))
    base.mkdir(parents=True, exist_ok=True)
    clone, reviews = base / "rnnbench", base / "reviews.csv"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    subprocess.run(["git", "clone", "-q", str(Path(".").resolve()), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, check=True, text=True,
                            capture_output=True).stdout.strip()
    bin_dir = clone / ".venv" / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": uri, "DVC_NO_ANALYTICS": "1"}
    sh("make env", clone, env)
    server = subprocess.Popen(
        [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{base / 'registry.db'}",
         "--artifacts-destination", str(base / "registry-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(1)
        # the default sentiment data, as its download stage reads it (then back to as it was)
        sh("dvc repro --single-item download@sentiment && git checkout -- dvc.lock", clone, env)
        corpus = base / "rotten_tomatoes.jsonl"
        (clone / "data/sentiment/raw/examples.jsonl").replace(corpus)
        rows = {1: write_reviews(corpus, reviews, FIRST_FILMS)}
        sh(f"dvc remote add -d storage {base / 'dvc-remote'}", clone, env)
        sh(f"python -c '{POINT_AT_CSV % reviews}'", clone, env)
        sh("git commit -qam 'Retrain the sentiment task from a CSV that grows'", clone, env)
        rounds = {}
        for n in (1, 2, 3):
            if n == 3:
                rows[3] = write_reviews(corpus, reviews, None)  # every film's reviews
            start = time.perf_counter()
            log = sh("rnnbench retrain", clone, env)
            seconds = round(time.perf_counter() - start, 1)
            sh(f"git add -A && git commit -qm 'Retraining round {n}' --allow-empty", clone, env)
            summary = (clone / "reports" / "retrain.md").read_text()
            rounds[f"round_{n}"] = {
                "seconds": seconds,
                "stages_ran": [ln.split("'")[1] for ln in log.splitlines()
                               if ln.startswith("Running stage '")],
                "reviews": rows.get(n, rows[1]),
                "decisions": [ln for ln in log.splitlines() if ln.startswith("sentiment: ")],
                "nothing_changed": "**Nothing changed**" in summary,
                "promotion": summary.split("## Promotion\n")[1].split("\n## ")[0].strip()}
            print(summary, flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
               "commit": commit, **rounds}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"retrain_rounds_{platform.machine()}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
