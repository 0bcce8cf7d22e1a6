"""The default run from a fresh clone, timed: `make run` (environment included) in a new clone of
the committed HEAD, with the time of every DVC stage, summed per stage group (stages run side
by side, one per core: the groups add up to more than the wall time). Standard library
only, so the system Python runs it before any environment exists. Run nothing else meanwhile.

    python3 -m benchmarks.make_run [--out benchmarks/results] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.machine import cpu_name

DONE = re.compile(r"^Stage '([^']+)' done in ([0-9.]+) s")
ENV_DONE = re.compile(r"touch \.venv/\.installed")


def timed_lines(cmd: list[str], cwd: Path, env: dict[str, str]
                ) -> tuple[int, list[tuple[float, str]]]:
    """Run `cmd`, echoing its output; every line with the seconds since the start."""
    start = time.perf_counter()
    lines = []
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
        print(line, end="", flush=True)
    return proc.wait(), [*lines, (time.perf_counter() - start, "<end>")]


def stage_times(lines: list[tuple[float, str]]) -> tuple[float, dict[str, float]]:
    """(environment seconds, seconds per stage as `rnnbench repro` reports them)."""
    env = next((t for t, line in lines if ENV_DONE.search(line)), 0.0)
    return env, {m.group(1): float(m.group(2)) for _, line in lines if (m := DONE.match(line))}


def append_history(path: Path, results: dict) -> None:
    """One entry per timed run, so the docs list the latest runs from a file, not by hand
    (`python -m pipeline.docs` renders them)."""
    history = json.loads(path.read_text()) if path.exists() else {"runs": []}
    history["runs"].append({
        "date": time.strftime("%Y-%m-%d"), "commit": results["commit"][:7], "recorded_in": None,
        "cpu": cpu_name(), "stages_at_once": results["stages_at_once"],
        "make_run_seconds": results["make_run_seconds"], "groups": results["groups"]})
    path.write_text(json.dumps(history, indent=1) + "\n")


def fresh_clone(doc: str, prefix: str) -> tuple[argparse.Namespace, str, Path]:
    """The command line of a fresh-clone benchmark (--repo, --out, --keep), the commit it
    times and a new clone of it."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path("."))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--keep", type=Path, help="clone here and keep it (default: a temp dir)")
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.repo, check=True,
                            capture_output=True, text=True).stdout.strip()
    clone = args.keep or Path(tempfile.mkdtemp(prefix=prefix)) / "rnnbench"
    subprocess.run(["git", "clone", "-q", str(args.repo.resolve()), str(clone)], check=True)
    return args, commit, clone


def main() -> None:
    args, commit, clone = fresh_clone(__doc__, "rnnbench-make-run-")
    # A fresh machine has no package cache: give uv an empty one (pip keeps none here).
    rc, lines = timed_lines(["make", "run"], clone,
                            {"UV_CACHE_DIR": tempfile.mkdtemp(prefix="rnnbench-uv-cache-")})
    if rc:
        sys.exit(f"make run failed (exit {rc}) in {clone}")
    env, stages = stage_times(lines)
    groups: dict[str, float] = {"environment": round(env, 1)}
    for name, seconds in stages.items():
        group = name.split("@")[0]
        groups[group] = round(groups.get(group, 0.0) + seconds, 1)
    results = {
        "make_run_seconds": round(lines[-1][0], 1), "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "stages_at_once": os.cpu_count(),
        "python": platform.python_version(), "groups": groups, "stages": stages,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"make_run_{platform.machine()}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    append_history(args.out / f"make_run_history_{platform.machine()}.json", results)
    print(json.dumps({k: v for k, v in results.items() if k != "stages"}, indent=2))
    print(f"wrote {path}; the run's outputs are in {clone}")


if __name__ == "__main__":
    main()
