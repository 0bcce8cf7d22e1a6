"""reports/summary.json: what the report found, per task and for the long-range sweep, for
people and tools to read (retraining's promotion reads each task's best cell)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.config import Family
from pipeline.config.records import read_model, write_model

SUMMARY_FILE = "summary.json"


class TaskSummary(BaseModel):
    """One task's entry: what it was ranked by and how the cells placed. The rest (each cell's
    metrics and intervals, the tests, accuracy by length, diagnostics, tuning) is kept as the
    report wrote it, for readers of the file."""

    model_config = ConfigDict(extra="allow")

    dataset: str
    family: Family
    ranked_by: str
    seeds: list[int]
    best: str
    winner: str | None  # the best cell, only if it beats every other significantly
    tiers: list[list[str]] | None  # best first; None where no strict order fits the tests


class ReportSummary(BaseModel):
    tasks: dict[str, TaskSummary]
    longrange: dict[str, Any] | None  # None: no long-range sweep ran


def write_summary(reports: Path, summary: ReportSummary) -> None:
    write_model(reports / SUMMARY_FILE, summary)


def read_summary(reports: Path) -> ReportSummary:
    return read_model(ReportSummary, reports / SUMMARY_FILE, "run the report stage again")
