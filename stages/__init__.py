"""One thin module per DVC stage: each reads params.yaml and calls one `pipeline` function.

Per-task stages are called as `python -m stages.X TASK`, per-cell ones as `... TASK CELL`,
per-run ones as `... TASK CELL SEED`;
the long-range ones as `... PROBLEM LENGTH` and `... PROBLEM LENGTH CELL SEED`.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config import CELLS, Params, TaskParams, load_params
from pipeline.errors import fail, run_guarded
from pipeline.paths import Layout
from pipeline.warm import run_warm

ROOT = Path(".")  # DVC runs every stage from the project root

# A stage module imports PyTorch, Lightning and MLflow next: half a million objects, through
# which the cyclic collector would run again and again while they load (0.9 s of every
# stage process). It comes back on, with them frozen, before the stage's work starts.
gc.disable()


def _run_and_exit(go: Callable[[], Any]) -> None:
    """Run a stage's work as `run_guarded` does (bad input: one line, exit 2). What the imports
    left is frozen first: neither the training loop's collections nor the interpreter's final
    one traverse it (the final one took 1.7 s of every stage process). Under `rnnbench
    repro` the warm server runs it instead, everything already imported (pipeline/warm.py)."""
    main = sys.modules["__main__"].__spec__
    if main is not None and (code := run_warm(main.name)) is not None:
        sys.exit(code)
    gc.freeze()
    gc.enable()
    try:
        run_guarded(go)
    finally:
        gc.freeze()


def run_stage(step: Callable[[Params, Path], Any]) -> None:
    """Run `step(params, root)`."""
    _run_and_exit(lambda: step(load_params(), ROOT))


def _args(*names: str) -> list[str]:
    if len(sys.argv) != len(names) + 1:
        fail(f"usage: python -m {sys.argv[0]} {' '.join(names)} (cells: {', '.join(CELLS)})")
    return sys.argv[1:]


def run_task_stage(step: Callable[[TaskParams, Layout], Any]) -> None:
    """Run `step(task params, task layout)` for the task named on the command line."""

    def go() -> None:
        (task,) = _args("TASK")
        step(load_params().for_task(task), Layout(ROOT, task))

    _run_and_exit(go)


def run_task_cell_stage(step: Callable[[TaskParams, str, Layout], Any]) -> None:
    """A per-task-and-cell stage: `step(task params, cell, task layout)`."""

    def go() -> None:
        task, cell = _args("TASK", "CELL")
        step(load_params().for_task(task), cell, Layout(ROOT, task))

    _run_and_exit(go)


def _integer(name: str, value: str, where: str) -> int:
    if not value.lstrip("-").isdigit():
        fail(f"{name}: expected an integer from params.yaml's {where}, got {value!r}")
    return int(value)


def run_cell_stage(step: Callable[[TaskParams, str, Layout, int], Any]) -> None:
    """Same for a per-run stage: `step(task params, cell, task layout, seed)`."""

    def go() -> None:
        task, cell, seed = _args("TASK", "CELL", "SEED")
        step(load_params().for_task(task), cell, Layout(ROOT, task),
             _integer("SEED", seed, "seeds"))

    _run_and_exit(go)


def run_longrange_stage(step: Callable[..., Any], per_run: bool) -> None:
    """A long-range stage: `step(params, problem, length, root)`, per run with `cell, seed`
    after them."""

    def go() -> None:
        names = ("PROBLEM", "LENGTH", "CELL", "SEED") if per_run else ("PROBLEM", "LENGTH")
        problem, length, *run = _args(*names)
        extra = (run[0], _integer("SEED", run[1], "seeds")) if per_run else ()
        step(load_params(), problem, _integer("LENGTH", length, "longrange.lengths"), ROOT,
             *extra)

    _run_and_exit(go)
