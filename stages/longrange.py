"""Stage `longrange@<problem>-<length>-<cell>-<seed>`: train and test one cell on one
synthetic long-range task."""

from pipeline.training.longrange import run_task
from stages import run_longrange_stage

if __name__ == "__main__":
    run_longrange_stage(run_task, per_run=True)
