"""Stage `generate@<problem>-<length>`: write one synthetic long-range task's data."""

from pipeline.data.synthetic import generate_task
from stages import run_longrange_stage

if __name__ == "__main__":
    run_longrange_stage(generate_task, per_run=False)
