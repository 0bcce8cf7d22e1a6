"""Stage `train@<cell>`: fit one cell, write models/<cell>/ and its learning curve."""

import sys

from pipeline.config import load_params
from pipeline.errors import fail, run_guarded
from pipeline.paths import Layout
from pipeline.training import train_cell


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: python -m stages.train CELL")
    train_cell(load_params(), sys.argv[1], Layout())


if __name__ == "__main__":
    run_guarded(main)
