"""Stage `report`: the comparison of all cells on all tasks in reports/."""

from pipeline.report.assemble import write_report
from stages import run_stage

if __name__ == "__main__":
    run_stage(write_report)
