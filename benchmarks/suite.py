"""The test suite from a fresh clone, timed: `CI=true bash .ci/run` (environment included, as CI
runs it) in a new clone of the committed HEAD; appends the result to
benchmarks/results/suite_history_<machine>.json, which docs/testing.md quotes. Standard library
only. Run nothing else meanwhile.

    python3 -m benchmarks.suite [--keep DIR]
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time

from benchmarks.make_run import fresh_clone, timed_lines
from pipeline.machine import cpu_name

# pytest's last line: "== 418 passed, 1 skipped in 737.84s (0:12:17) =="
TOTALS = re.compile(r"=+ (.*) in ([0-9.]+)s")
WORKERS = re.compile(r"created: (\d+)/\d+ workers")


def summary(lines: list[str]) -> dict[str, float | int]:
    """Counts by outcome, pytest's seconds and its workers, from the suite's output."""
    last = next(m for line in reversed(lines) if (m := TOTALS.search(line)))
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last.group(1))}
    workers = next((int(m.group(1)) for line in lines if (m := WORKERS.search(line))), 1)
    return {**counts, "pytest_seconds": float(last.group(2)), "workers": workers}


def main() -> None:
    args, commit, clone = fresh_clone(__doc__, "rnnbench-suite-")
    rc, lines = timed_lines(["bash", ".ci/run"], clone, {"CI": "true"})
    if rc:
        sys.exit(f"the suite failed (exit {rc}) in {clone}")
    entry = {"date": time.strftime("%Y-%m-%d"), "commit": commit[:7], "cpu": cpu_name(),
             "command": "CI=true bash .ci/run", "seconds": round(lines[-1][0], 1),
             **summary([line for _, line in lines])}
    path = args.out / f"suite_history_{platform.machine()}.json"
    history = json.loads(path.read_text()) if path.exists() else {"runs": []}
    history["runs"].append(entry)
    path.write_text(json.dumps(history, indent=1) + "\n")
    print(json.dumps(entry, indent=1))
    print(f"appended to {path}; the clone is {clone}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
