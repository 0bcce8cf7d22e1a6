"""Where every stage reads and writes, relative to the project root (mirrors dvc.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.errors import fail

SPLITS = ("train", "val", "test")
TEST_EXAMPLES = "test.jsonl"  # prepared/: the test split's examples as read, in order
# prepared/, and copied into each model folder so that a model predicts on its own
VOCAB_FILE, CHARS_FILE = "vocab.json", "chars.json"


def reports_dir(root: Path) -> Path:
    """The report covers every task, so it lives beside them, not under one."""
    return root / "reports"


@dataclass(frozen=True)
class Layout:
    """One task's files: data/<task>/, models/<task>/<cell>/seed<seed>/, metrics/<task>/...;
    and reports/. `untuned` is the layout of a twin fit (with tuning on, each seed fitted again
    at the untuned settings, so that the report can say what tuning changed): its own model
    folder, seed<seed>-untuned, holding its history, and its metrics beside the others."""

    root: Path
    task: str
    untuned: bool = False

    def as_untuned(self) -> Layout:
        return replace(self, untuned=True)

    @property
    def raw(self) -> Path:
        return self.root / "data" / self.task / "raw"

    @property
    def prepared(self) -> Path:
        return self.root / "data" / self.task / "prepared"

    def require_prepared(self) -> Path:
        """The prepared folder, or one line naming what writes it (not a FileNotFoundError from
        whichever file a stage happens to read first)."""
        if not (self.prepared / "stats.json").is_file():
            fail(f"{self.prepared}: no prepared data; run the stages before this one first "
                 f"(`dvc repro`, or `rnnbench download` and `rnnbench prepare --task "
                 f"{self.task}`)")
        return self.prepared

    def split(self, name: str) -> Path:
        return self.prepared / f"{name}.pt"

    def model_dir(self, cell: str, seed: int) -> Path:
        return self.root / "models" / self.task / cell / f"seed{seed}{self._twin}"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / self.task

    def tuning(self, cell: str) -> Path:
        """A cell's tuning record: its study's best settings (tune stage)."""
        return self.metrics / "tuning" / f"{cell}.json"

    @property
    def _twin(self) -> str:
        return "-untuned" if self.untuned else ""

    def _metrics(self, kind: str, cell: str, seed: int, suffix: str) -> Path:
        return self.metrics / kind / f"{cell}-seed{seed}{self._twin}{suffix}"

    def history(self, cell: str, seed: int) -> Path:
        """Per epoch; the untuned twin's in its model folder (its stage's one output)."""
        if self.untuned:
            return self.model_dir(cell, seed) / "history.csv"
        return self._metrics("history", cell, seed, ".csv")

    def test_metrics(self, cell: str, seed: int) -> Path:
        return self._metrics("test", cell, seed, ".json")

    def per_label(self, cell: str, seed: int) -> Path:
        return self._metrics("per_label", cell, seed, ".json")

    def predictions(self, cell: str, seed: int) -> Path:
        return self._metrics("predictions", cell, seed, ".csv")

    def diagnostics(self, cell: str, seed: int) -> Path:
        return self._metrics("diagnostics", cell, seed, ".json")

    @property
    def reports(self) -> Path:
        return reports_dir(self.root)
