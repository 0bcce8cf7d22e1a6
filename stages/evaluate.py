"""Stage `evaluate@<task>-<cell>`: test metrics and predictions for one trained cell."""

from pipeline.evaluation import evaluate_cell
from stages import run_cell_stage

if __name__ == "__main__":
    run_cell_stage(evaluate_cell)
