"""Stage `train@<task>-<cell>-<seed>`: fit one cell on one task with one seed (with tuning on,
at its study's best settings, and again at the untuned ones)."""

from pipeline.tuning.fits import train_stage
from stages import run_cell_stage

if __name__ == "__main__":
    run_cell_stage(train_stage)
