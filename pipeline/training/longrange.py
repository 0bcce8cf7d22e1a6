"""The long-range sweep: each synthetic problem and length is a small task of its own, written
by `synthetic.generate_task`, then trained and tested per cell and seed by `run_task` with the
same code as the real tasks (and the same diagnostics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.evaluation.evaluate import evaluate_cell
from pipeline.paths import Layout
from pipeline.training.fit import train_cell


def run_task(params: Params, problem: str, length: int, root: Path, cell: str, seed: int
             ) -> dict[str, Any]:
    """Stage longrange@<problem>-<length>-<cell>-<seed>: fit, then test, one cell."""
    tp = params.for_longrange(problem, length)
    layout = Layout(root, tp.name)
    train_cell(tp, tp.for_cell(cell, seed), layout)
    return evaluate_cell(tp, cell, layout, seed)
