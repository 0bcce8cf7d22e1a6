"""Stage `evaluate@<task>-<cell>-<seed>`: test metrics and predictions of one trained run."""

from pipeline.evaluation import evaluate_cell
from stages import run_cell_stage

if __name__ == "__main__":
    run_cell_stage(evaluate_cell)
