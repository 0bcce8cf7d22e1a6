"""One thin module per DVC stage: each reads params.yaml and calls one `pipeline` function.

Per-task stages are called as `python -m stages.X TASK`, per-run ones as `... TASK CELL SEED`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import CELLS, Params, TaskParams, load_params
from pipeline.errors import fail, run_guarded
from pipeline.paths import Layout

ROOT = Path(".")  # DVC runs every stage from the project root


def run_stage(step: Callable[[Params, Path], Any]) -> None:
    """Run `step(params, root)`; bad input is one line, exit 2."""
    run_guarded(lambda: step(load_params(), ROOT))


def _args(*names: str) -> list[str]:
    if len(sys.argv) != len(names) + 1:
        fail(f"usage: python -m {sys.argv[0]} {' '.join(names)} (cells: {', '.join(CELLS)})")
    return sys.argv[1:]


def run_task_stage(step: Callable[[TaskParams, Layout], Any]) -> None:
    """Run `step(task params, task layout)` for the task named on the command line."""

    def go() -> None:
        (task,) = _args("TASK")
        step(load_params().for_task(task), Layout(ROOT, task))

    run_guarded(go)


def run_cell_stage(step: Callable[[TaskParams, str, Layout, int], Any]) -> None:
    """Same for a per-run stage: `step(task params, cell, task layout, seed)`."""

    def go() -> None:
        task, cell, seed = _args("TASK", "CELL", "SEED")
        if not seed.lstrip("-").isdigit():
            fail(f"SEED: expected an integer from params.yaml's seeds, got {seed!r}")
        step(load_params().for_task(task), cell, Layout(ROOT, task), int(seed))

    run_guarded(go)
