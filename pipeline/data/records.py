"""What the download and prepare (or generate) stages record beside their data, and training,
the report and retraining read: `source.json` (where the raw examples came from) and
`stats.json` (the prepared splits). Each a model with its one writer and one reader."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from pipeline.config import Family
from pipeline.config.records import read_model, write_model

SOURCE_FILE, STATS_FILE = "source.json", "stats.json"


class SourceRecord(BaseModel):
    """data/<task>/raw/source.json."""

    dataset: str
    family: Family
    source: str  # the artifact, as `Source.describe` names it
    sha256: str
    examples: int
    licence: str
    splits: str = "by group"  # how train/val/test arise (not recorded by older downloads)


def write_source(raw: Path, record: SourceRecord) -> None:
    write_model(raw / SOURCE_FILE, record)


def read_source(raw: Path) -> SourceRecord:
    return read_model(SourceRecord, raw / SOURCE_FILE, "run the download stage again")


class Lengths(BaseModel):
    """Example lengths in tokens."""

    min: int
    p50: int
    p90: int
    p99: int
    max: int


class SplitStats(BaseModel):
    examples: int
    groups: int
    tokens: int
    oov_rate: float
    label_counts: dict[str, int]  # every label, in the labels' order
    length: Lengths

    def majority(self) -> float:
        """The share of the most frequent label: what always predicting it scores."""
        total = sum(self.label_counts.values())
        return max(self.label_counts.values()) / total if total else 0.0


class VectorStats(BaseModel):
    """Pretrained vectors' coverage of the vocabulary (prepare.vectors)."""

    source: str
    dim: int
    types_covered: int
    types: int
    type_coverage: float
    train_token_coverage: float


class Generator(BaseModel):
    problem: str
    length: int
    seed: int


class Duplicates(BaseModel):
    """Texts found more than once, and what prepare did so that none spans two splits."""

    exact: int  # examples whose text repeats an earlier example's exactly
    normalised: int  # further ones that do once case, spacing, URLs and @mentions are ignored
    moved: int  # copies moved to the split of their text's first copy
    dropped: int  # copies of a given test split's text removed from training and validation
    most_copies: int  # of the most repeated text


class DataStats(BaseModel):
    """data/<task>/prepared/stats.json. A downloaded task records its raw file's hash and its
    warnings, a generated one its generator; `dropped_empty` for classification only."""

    family: Family
    examples: int
    vocab_size: int
    labels: list[str]
    raw_sha256: str | None = None
    generator: Generator | None = None
    splits: dict[str, SplitStats]
    dropped_empty: int | None = None
    warnings: list[str] = []
    vectors: VectorStats | None = None
    duplicates: Duplicates | None = None  # None for generated data


def write_stats(prepared: Path, stats: DataStats) -> None:
    write_model(prepared / STATS_FILE, stats)


def read_stats(prepared: Path) -> DataStats:
    return read_model(DataStats, prepared / STATS_FILE, "run the prepare stage again")
