"""Stage `train@<task>-<cell>-<seed>`: fit one cell on one task with one seed."""

from pipeline.training.fit import train_cell
from stages import run_cell_stage

if __name__ == "__main__":
    run_cell_stage(train_cell)
