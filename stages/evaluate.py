"""Stage `evaluate@<cell>`: test metrics and predictions for one trained cell."""

import sys

from pipeline.config import load_params
from pipeline.errors import fail, run_guarded
from pipeline.evaluation import evaluate_cell
from pipeline.paths import Layout


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: python -m stages.evaluate CELL")
    evaluate_cell(load_params(), sys.argv[1], Layout())


if __name__ == "__main__":
    run_guarded(main)
