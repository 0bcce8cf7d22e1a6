"""Stage `train@<cell>`: fit one cell, write models/<cell>/ and its learning curve."""

from pipeline.training import train_cell
from stages import run_cell_stage

if __name__ == "__main__":
    run_cell_stage(train_cell)
