"""The fits of stage `train@` (a cell and its untuned twin) and of `rnnbench train`, one path:
the settings resolved here, above training, then handed to `train_cell`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from pipeline.config import TaskParams
from pipeline.files import atomic_dir, write_json
from pipeline.paths import Layout
from pipeline.tuning.settings import fit_settings

if TYPE_CHECKING:
    from pipeline.model.record import TrainRecord

NO_TWIN = "no_untuned_fit.json"  # what stage train@ writes for the twin with tuning off


def train(params: TaskParams, cell: str, layout: Layout, seed: int | None = None,
          fast_dev_run: bool = False) -> TrainRecord | None:
    """One cell and seed at its settings (with tuning on, its study's best); in
    `layout.as_untuned()`, at the untuned ones."""
    from pipeline.training.fit import train_cell  # PyTorch and Lightning: only to fit

    return train_cell(params, fit_settings(params, cell, seed, layout), layout, fast_dev_run)


def train_stage(params: TaskParams, cell: str, layout: Layout, seed: int) -> None:
    """Stage `train@<task>-<cell>-<seed>`: the cell at its settings, then its untuned twin.
    One stage, not two: with tuning off the twin is a note, and as a stage of its own it cost
    4 s of DVC and a fifth of dvc.lock, which DVC reads and rewrites after every stage."""
    train(params, cell, layout, seed)
    train_untuned(params, cell, layout, seed)


def train_untuned(params: TaskParams, cell: str, layout: Layout, seed: int
                  ) -> TrainRecord | None:
    """The untuned twin of stage `train@<task>-<cell>-<seed>`: with tuning on, the same seed
    at the untuned settings, which the report sets against the tuned fit (what tuning gained,
    and whether it changed the ranking). With tuning off a cell has one fit: its output
    folder says so."""
    if params.tuned:
        return train(params, cell, layout.as_untuned(), seed)
    with atomic_dir(layout.as_untuned().model_dir(cell, seed)) as out:
        write_json(out / NO_TWIN, {"fitted": False, "why": "tune.enabled is false: each cell "
                                   "trains once, at its settings (stage train@)"})
    print(f"{params.name}/{cell}/seed{seed}: no untuned fit (tune.enabled: false)",
          file=sys.stderr)
    return None
