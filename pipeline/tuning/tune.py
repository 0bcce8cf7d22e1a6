"""The tune stage's step: light, like the settings it writes, so that with tuning off (the
default) the stage loads no PyTorch; the study itself is imported only to run one."""

from __future__ import annotations

from pipeline.config import TaskParams
from pipeline.files import write_json
from pipeline.paths import Layout
from pipeline.tuning.settings import TuningRecord


def tune_cell(params: TaskParams, cell: str, layout: Layout) -> TuningRecord:
    """The tune stage: run the cell's study (tuning on) and write its record; with tuning off,
    a record that says so, which the train stage ignores."""
    if params.tune.enabled:
        from pipeline.tuning.study import run_study  # PyTorch, Lightning, Optuna: only here

        record = run_study(params, cell, layout)
    else:
        record = TuningRecord(enabled=False, cell=cell, settings={})
    write_json(layout.tuning(cell), record.model_dump())
    return record
