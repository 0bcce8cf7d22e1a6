"""Stage `untuned@<task>-<cell>-<seed>`: with tuning on, the same fit at the untuned settings
(with tuning off, a note that there is none)."""

from pipeline.tuning.fits import train_untuned
from stages import run_cell_stage

if __name__ == "__main__":
    run_cell_stage(train_untuned)
