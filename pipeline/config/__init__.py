"""params.yaml, the one config source: its sections (`sections`), how a task's and a cell's
settings resolve (`params`), and reading the file (`load`). Callers import from here."""

from pipeline.config.load import PARAMS_FILE, load_params, parse_params
from pipeline.config.params import Params, SharedParams, TaskParams
from pipeline.config.sections import (
    CELLS,
    Cell,
    CellParams,
    DataParams,
    DatasetName,
    Family,
    ModelParams,
    PrepareParams,
    ReaderParams,
    SourceParams,
    TrainParams,
)

__all__ = [
    "CELLS", "PARAMS_FILE", "Cell", "CellParams", "DataParams", "DatasetName", "Family",
    "ModelParams", "Params", "PrepareParams", "ReaderParams", "SharedParams", "SourceParams",
    "TaskParams", "TrainParams", "load_params", "parse_params",
]
