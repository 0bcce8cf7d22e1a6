"""Where every stage reads and writes, relative to the project root (mirrors dvc.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Layout:
    root: Path = Path(".")

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    def split(self, name: str) -> Path:
        return self.prepared / f"{name}.pt"

    def model_dir(self, cell: str) -> Path:
        return self.root / "models" / cell

    def history(self, cell: str) -> Path:
        return self.root / "metrics" / "history" / f"{cell}.csv"

    def test_metrics(self, cell: str) -> Path:
        return self.root / "metrics" / "test" / f"{cell}.json"

    def per_label(self, cell: str) -> Path:
        return self.root / "metrics" / "per_label" / f"{cell}.json"

    def predictions(self, cell: str) -> Path:
        return self.root / "metrics" / "predictions" / f"{cell}.csv"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
