"""What the report reads: each cell's runs, metrics, histories and predictions, as one
`CellResult` per cell and one `TaskResult` per task."""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

import numpy as np

from pipeline.config import Family, TaskParams
from pipeline.data.catalog import get_dataset
from pipeline.data.loading import EncodedSplit
from pipeline.data.prepare import read_test_examples
from pipeline.data.records import DataStats, SourceRecord, read_source, read_stats
from pipeline.errors import RnnbenchError, fail
from pipeline.model.record import TrainRecord, read_record
from pipeline.paths import TEST_EXAMPLES, Layout
from pipeline.scoring.examples import by_example, by_group, headline, per_example
from pipeline.scoring.metrics import bio_spans, confusion_matrix, is_bio
from pipeline.scoring.records import PerLabel, TestMetrics, read_per_label, read_test_metrics
from pipeline.scoring.stats import Summary, bootstrap_interval, summarize, two_level_interval


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def read_predictions(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class Confusion:
    """What a confusion matrix shows: counts[actual][predicted] over `rows` x `columns`. For
    labels (and tags) the two are the same; for BIO entities each gold entity is counted once,
    under the type of the predicted entity with exactly its span or under `missed`, and
    predicted entities with no gold entity at their span are counted apart (`spurious`)."""

    rows: list[str]
    columns: list[str]
    counts: list[list[int]]
    spurious: int | None = None  # entities only


MISSED = "missed"


def label_confusion(rows: list[dict[str, str]], labels: list[str]) -> Confusion:
    index = {label: i for i, label in enumerate(labels)}
    counts = confusion_matrix([index[r["actual"]] for r in rows],
                              [index[r["predicted"]] for r in rows], len(labels))
    return Confusion(labels, labels, counts)


def entity_confusion(rows: list[dict[str, str]], labels: list[str]) -> Confusion:
    types = sorted({label.partition("-")[2] for label in labels if label != "O"})
    columns = [*types, MISSED]
    counts = [[0] * len(columns) for _ in types]
    spurious = 0
    for gold, pred in by_example(rows).values():
        predicted = {(start, end): kind for kind, start, end in bio_spans(pred)}
        real = bio_spans(gold)
        for kind, start, end in real:
            counts[types.index(kind)][columns.index(predicted.get((start, end), MISSED))] += 1
        spurious += len(predicted.keys() - {(start, end) for _, start, end in real})
    return Confusion(types, columns, counts, spurious)


def confusion(rows: list[dict[str, str]], labels: list[str]) -> Confusion:
    """Entity-level for BIO tag sets (a 21x21 tag grid says little), else per label."""
    return entity_confusion(rows, labels) if is_bio(labels) else label_confusion(rows, labels)


def summed(confusions: list[Confusion]) -> Confusion:
    """Several seeds' confusions as one."""
    first = confusions[0]
    counts = np.sum([c.counts for c in confusions], axis=0).tolist()
    spurious = None if first.spurious is None else sum(c.spurious or 0 for c in confusions)
    return replace(first, counts=counts, spurious=spurious)


@dataclass(frozen=True)
class RunResult:
    """One seed of a cell: its model's record, test metrics, history and predictions."""

    seed: int
    train: TrainRecord
    test: TestMetrics
    history: list[dict[str, float]]
    rows: list[dict[str, str]]
    per_label: PerLabel


@dataclass(frozen=True)
class CellResult:
    """One cell over its seeds: their runs, the metrics' means, the headline score with its
    interval, the summed confusion, and per seed and test example the headline metric as
    num/den (`seed_num`, `seed_den`: seeds x examples; `num`, `den`: summed over seeds) with
    each example's split group."""

    cell: str
    runs: list[RunResult]
    test: TestMetrics  # the mean over seeds
    score: Summary
    confusion: Confusion | None  # none for language models
    seed_num: np.ndarray
    seed_den: np.ndarray
    groups: np.ndarray  # each test example's split group
    unit: str  # what the tests resample, in words: "test movies", or "test examples"

    @property
    def grouped(self) -> tuple[np.ndarray, np.ndarray]:
        """`seed_num`, `seed_den` summed per split group (seeds x groups): what intervals and
        tests resample, since a split never cuts a group."""
        return by_group(self.seed_num, self.groups), by_group(self.seed_den, self.groups)

    @property
    def num(self) -> np.ndarray:
        return self.seed_num.sum(axis=0)

    @property
    def den(self) -> np.ndarray:
        return self.seed_den.sum(axis=0)

    @property
    def train(self) -> TrainRecord:
        """The first seed's record: what every seed shares (family, labels, settings)."""
        return self.runs[0].train

    def per_label_f1(self, name: str) -> float:
        """A label's (entity type's) F1, mean over seeds."""
        return sum(run.per_label.f1(name) for run in self.runs) / len(self.runs)


@dataclass(frozen=True)
class TaskResult:
    """One task's cells (in params.yaml's order), its data, the metric it is ranked by, and
    for tagging what tagging each word with its most frequent training tag scores on test."""

    params: TaskParams
    cells: list[CellResult]
    stats: DataStats
    source: SourceRecord
    metric: str  # e.g. entity_f1
    label: str  # its name in words, e.g. entity F1
    word_baseline: float | None = None  # tagging only

    @property
    def first(self) -> TrainRecord:
        """The first cell's record: the task's family, labels, monitor and device."""
        return self.cells[0].train

    @property
    def parent_runs(self) -> list[str]:
        """The comparison runs the cells were trained under."""
        return sorted({run.train.parent_run_id for r in self.cells for run in r.runs})


def collect_task(params: TaskParams, layout: Layout) -> TaskResult:
    """A task's cells with its data's records."""
    cells = collect(params, layout)
    metric, label = headline(cells[0].train.family, cells[0].train.labels)
    labels = cells[0].train.labels
    baseline = (word_tag_baseline(EncodedSplit(layout.split("train")),
                                  EncodedSplit(layout.split("test")), labels, metric)
                if cells[0].train.family == Family.TAGGING else None)
    return TaskResult(params, cells, read_stats(layout.prepared), read_source(layout.raw),
                      metric, label, baseline)


def word_tag_baseline(train: EncodedSplit, test: EncodedSplit, labels: list[str],
                      metric: str) -> float:
    """The test score of tagging each word with the tag it has most often in training (a word
    training never shows, with the most frequent tag overall): the floor a tagger must clear
    to have learned anything from context (for POS, about 90% where the majority tag alone
    gives 25%)."""
    pairs, counts = np.unique(np.stack([train.ids.numpy(), train.tags.numpy()], axis=1),
                              axis=0, return_counts=True)
    overall = int(np.bincount(train.tags.numpy()).argmax())
    best: dict[int, tuple[int, int]] = {}  # word -> (count, tag); ties: the lower tag id
    for (word, tag), n in zip(pairs.tolist(), counts.tolist(), strict=True):
        if n > best.get(word, (0, 0))[0]:
            best[word] = (n, tag)
    guess = np.array([best.get(w, (0, overall))[1] for w in test.ids.tolist()], dtype=np.int64)
    gold = test.tags.numpy()
    if metric != "entity_f1":
        return float((guess == gold).mean()) if gold.size else 0.0
    offsets = test.offsets.tolist()
    rows = [{"example": i, "actual": labels[g], "predicted": labels[p]}
            for i, (a, b) in enumerate(pairwise(offsets))
            for g, p in zip(gold[a:b], guess[a:b], strict=True)]
    num, den = per_example(rows, metric, len(offsets) - 1)
    return float(num.sum() / den.sum()) if den.sum() else 0.0


def collect(params: TaskParams, layout: Layout) -> list[CellResult]:
    """Everything the report needs per cell of one task, over its seeds, from the files the
    earlier stages wrote."""
    results = []
    groups: np.ndarray | None = None  # the test split's, read once for all cells
    for cell in params.cells:
        runs = []
        for seed in params.seeds:
            try:
                train = read_record(layout.model_dir(cell, seed))
                rows = read_predictions(layout.predictions(cell, seed))
                test = read_test_metrics(layout.test_metrics(cell, seed))
                runs.append(RunResult(seed, train, test, read_history(layout.history(cell, seed)),
                                      rows, read_per_label(layout.per_label(cell, seed))))
            except (OSError, ValueError, KeyError, RnnbenchError) as err:
                fail(f"report: results for {params.name}/{cell}/seed{seed} are missing or "
                     f"unreadable ({err}); run `dvc repro`")
        train = runs[0].train
        metric, _ = headline(train.family, train.labels)
        n = int(runs[0].test.test_examples)
        examples = [per_example(r.rows, metric, n) for r in runs]
        num, den = np.array([e[0] for e in examples]), np.array([e[1] for e in examples])
        if groups is None or groups.size != n:
            groups = test_groups(layout, n)
        gnum, gden = by_group(num, groups), by_group(den, groups)
        # the interval another test sample allows, and with seeds another set of seeds too
        low, high = (bootstrap_interval(gnum[0], gden[0]) if len(runs) == 1
                     else two_level_interval(gnum, gden))
        score = summarize([getattr(r.test, metric) for r in runs])
        # the stored metric is rounded: an interval of one group can sit a rounding beside it
        score = replace(score, low=min(low, score.mean), high=max(high, score.mean))
        results.append(CellResult(
            cell, runs, TestMetrics.mean([r.test for r in runs]), score,
            None if train.family == Family.LANGUAGE_MODEL
            else summed([confusion(r.rows, train.labels) for r in runs]), num, den, groups,
            unit_words(params, gnum.shape[-1], n)))
    return results


def test_groups(layout: Layout, n: int) -> np.ndarray:
    """Each test example's split group, as prepare recorded it (each example its own where
    nothing was recorded, as for generated data)."""
    if not (layout.prepared / TEST_EXAMPLES).is_file():
        return np.arange(n).astype(str)
    examples = read_test_examples(layout.prepared)
    if len(examples) != n:
        fail(f"{layout.prepared / TEST_EXAMPLES}: {len(examples)} test examples, the "
             f"predictions {n}; run `dvc repro`")
    return np.array([str(ex.get("group", i)) for i, ex in enumerate(examples)])


def unit_words(params: TaskParams, groups: int, examples: int) -> str:
    """What the tests resample: "test movies" where groups hold several examples."""
    if groups == examples:
        return "test examples"
    return f"test {get_dataset(params.data.dataset).groups}"
