"""A cell's tuning record (metrics/<task>/tuning/<cell>.json, the tune stage's output) and how
the train stage applies it. Light on purpose: every train stage imports it, and so does a tune
stage with tuning off, which has nothing to load PyTorch for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.config import CellParams, TaskParams
from pipeline.config.sections import describe
from pipeline.errors import fail
from pipeline.files import read_json
from pipeline.paths import Layout

Value = float | int | str | bool
PERMUTATIONS = 49  # shuffles of the scores behind importance's p-value (smallest p: 0.02)


class TrialSummary(BaseModel):
    number: int
    state: str  # COMPLETE, PRUNED or FAIL
    value: float | None  # its best validation score
    params: dict[str, Value | None]  # the settings it fitted (None: PyTorch's default)


class TuningRecord(BaseModel):
    """What one cell's study found. `settings` (keyed `model.<key>` / `train.<key>`) is what
    the train stage applies; the rest is for the report."""

    enabled: bool
    cell: str
    settings: dict[str, Value | None]  # the best trial's, as fitted (None: PyTorch's default)
    monitor: str | None = None  # val_acc, or val_entity_f1 for BIO tag sets
    trials: int = 0  # finished: complete and pruned
    pruned: int = 0
    best_trial: int | None = None
    best_value: float | None = None
    default_value: float | None = None  # trial 0: the untuned settings, at the same budget
    study: str | None = None
    importance: dict[str, float] = {}  # fANOVA, per tuned setting
    importance_p: float | None = None  # the largest share against shuffled scores
    history: list[TrialSummary] = []


def read_tuning(path: Path) -> TuningRecord:
    try:
        return TuningRecord.model_validate(read_json(path))
    except ValidationError as err:
        fail(f"{path}: not a tuning record ({describe(err)}); rerun its tune stage")


def apply(cp: CellParams, settings: dict[str, Any]) -> CellParams:
    """`cp` with the tuned settings in place."""
    sections = {"model": cp.model.model_dump(), "train": cp.train.model_dump()}
    for key, value in settings.items():
        section, name = key.split(".", 1)
        sections[section][name] = value
    try:
        return CellParams(cell=cp.cell, seed=cp.seed, **sections)  # type: ignore[arg-type]
    except ValidationError as err:
        fail(f"tuned settings of {cp.cell}: {describe(err)}; rerun its tune stage")


def fit_settings(params: TaskParams, cell: str, seed: int | None, layout: Layout) -> CellParams:
    """The settings a fit runs at, resolved here once for the train stage and `rnnbench
    train`: with tuning on, its cell's best from the study, except in the untuned twin."""
    cp = params.for_cell(cell, seed)
    if not params.tuned or layout.untuned:
        return cp
    path = layout.tuning(cp.cell)
    if not path.exists():
        fail(f"{path}: missing; with tune.enabled: true a cell trains at its study's best "
             f"settings: run `dvc repro tune@{params.name}-{cp.cell}` first")
    return apply(cp, read_tuning(path).settings)
