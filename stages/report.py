"""Stage `report`: the comparison of all cells in reports/."""

from pipeline.config import load_params
from pipeline.errors import run_guarded
from pipeline.paths import Layout
from pipeline.reporting import write_report


def main() -> None:
    write_report(load_params(), Layout())


if __name__ == "__main__":
    run_guarded(main)
