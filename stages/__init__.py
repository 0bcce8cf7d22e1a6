"""One thin module per DVC stage: each reads params.yaml and calls one `pipeline` function."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from pipeline.config import CELLS, Params, load_params
from pipeline.errors import fail, run_guarded
from pipeline.paths import Layout


def run_stage(step: Callable[[Params, Layout], Any]) -> None:
    """Run `step(params, layout)` from the project root; bad input is one line, exit 2."""
    run_guarded(lambda: step(load_params(), Layout()))


def run_cell_stage(step: Callable[[Params, str, Layout], Any]) -> None:
    """Same for a per-cell stage, called as `python -m stages.X CELL`."""

    def go() -> None:
        if len(sys.argv) != 2:
            fail(f"usage: python -m {sys.argv[0]} CELL (one of {', '.join(CELLS)})")
        step(load_params(), sys.argv[1], Layout())

    run_guarded(go)
