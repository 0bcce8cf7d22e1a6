"""Stage `evaluate@<task>`: test metrics and predictions of every trained cell and seed."""

from pipeline.evaluation.evaluate import evaluate_task
from stages import run_task_stage

if __name__ == "__main__":
    run_task_stage(evaluate_task)
