"""Stage `tune@<task>-<cell>`: one cell's study of its best settings (a record saying tuning is
off, by default)."""

from pipeline.tuning.tune import tune_cell
from stages import run_task_cell_stage

if __name__ == "__main__":
    run_task_cell_stage(tune_cell)
