"""What the evaluate stage writes per cell and seed under metrics/<task>/ and the report reads:
test metrics, per-label scores and long-range diagnostics, each a model with its one writer and
one reader. Light on purpose (no PyTorch): the report and `rnnbench compare` import it.

Adding a metric is a field of `TestMetrics` and its computation in `evaluate.score`: the file,
MLflow, summary.json and `rnnbench compare` (where the field has a `Column`) follow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from pipeline.config.records import parse_model, read_model, stored, write_model
from pipeline.files import read_json, write_json


@dataclass(frozen=True)
class Column:
    """How `rnnbench compare` shows a metric: its column header, as a percentage or not."""

    header: str
    percent: bool = False


@dataclass(frozen=True)
class FromRecord:
    """A value copied from the model's record: its training run logs it under its own name,
    the evaluation logs the rest as `test_<name>`."""


Count = int | float  # a count in one seed's file; a float once averaged over seeds


class TestMetrics(BaseModel):
    """metrics/<task>/test/<cell>-seed<seed>.json (`dvc metrics show` reads it). Optional
    fields are absent where the task has no such metric (OOV for classification, entity scores
    for tag sets without BIO entities); `oov_accuracy` is null where no test token is OOV."""

    __test__ = False  # not a pytest class, whatever its name
    model_config = ConfigDict(extra="forbid")  # a metric is a field, or it is not written

    accuracy: Annotated[float, Column("test acc", percent=True)]  # language models: next word
    macro_f1: Annotated[float | None, Column("macro-F1")] = None  # not for language models
    # language models: perplexity and bits per token of the test split's words and sentence
    # ends, and the mean log-likelihood per token (nats), which ranks them: higher is better
    perplexity: Annotated[float | None, Column("perplexity")] = None
    bits_per_token: float | None = None
    log_likelihood: float | None = None
    oov_tokens: Count | None = None
    oov_accuracy: float | None = None
    entity_precision: float | None = None
    entity_recall: float | None = None
    entity_f1: Annotated[float | None, Column("entity F1", percent=True)] = None
    loss: float
    num_parameters: Annotated[Count, FromRecord(), Column("params")]
    train_seconds: Annotated[float, FromRecord(), Column("train s")]
    epochs: Annotated[Count, FromRecord()]
    inference_examples_per_s: Annotated[float, Column("infer ex/s")]
    test_examples: Count

    def value(self, metric: str) -> float:
        """A metric by name (the headline one a task ranks by)."""
        return getattr(self, metric)

    def logged(self) -> dict[str, float]:
        """What MLflow's run of the model gets: every metric measured here, as `test_<name>`
        (`test_examples` as it is, not `test_test_examples`)."""
        return {k if k.startswith("test_") else f"test_{k}": v for k, v in stored(self).items()
                if v is not None and not field_marker(k, FromRecord)}

    @classmethod
    def mean(cls, runs: list[TestMetrics]) -> TestMetrics:
        """Averaged over seeds, key by key (where a seed has none, the first seed's value)."""
        out = {}
        for key, first in stored(runs[0]).items():
            values = [getattr(r, key) for r in runs]
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool)
                          for v in values)
            out[key] = sum(values) / len(values) if numeric else first
        return cls.model_validate(out)


def field_marker(field: str, marker: type) -> Any:
    """The `marker` metadata of a TestMetrics field, or None."""
    return next((m for m in TestMetrics.model_fields[field].metadata
                 if isinstance(m, marker)), None)


def columns() -> dict[str, Column]:
    """The metrics `rnnbench compare` shows, keyed by their MLflow names, in field order."""
    return {(name if field_marker(name, FromRecord) else f"test_{name}"): column
            for name in TestMetrics.model_fields if (column := field_marker(name, Column))}


def write_test_metrics(path: Path, metrics: TestMetrics) -> None:
    write_model(path, metrics)


def read_test_metrics(path: Path) -> TestMetrics:
    return read_model(TestMetrics, path, "rerun its evaluate stage")


class LabelScores(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int


class PerLabel(BaseModel):
    """metrics/<task>/per_label/<cell>-seed<seed>.json: the scores per label, or for BIO tag
    sets per entity type (`scores`) and per tag (`tags`). On disk the first is the object
    itself, the second `{"entities": ..., "tags": ...}`."""

    scores: dict[str, LabelScores]
    tags: dict[str, LabelScores] | None = None  # BIO tag sets only

    @property
    def kind(self) -> str:
        return "label" if self.tags is None else "entity type"

    def f1(self, name: str) -> float:
        """F1 of a label (entity type); 0 for one this seed never saw nor predicted."""
        score = self.scores.get(name)
        return score.f1 if score is not None else 0


ENTITIES = "entities"


def write_per_label(path: Path, per_label: PerLabel) -> None:
    scores = stored(per_label)["scores"]
    write_json(path, scores if per_label.tags is None
               else {ENTITIES: scores, "tags": stored(per_label)["tags"]})


def read_per_label(path: Path) -> PerLabel:
    raw = read_json(path, "rerun its evaluate stage")
    entities = isinstance(raw, dict) and raw.keys() == {ENTITIES, "tags"}
    return parse_model(PerLabel, {"scores": raw[ENTITIES], "tags": raw["tags"]} if entities
                       else {"scores": raw}, str(path), "rerun its evaluate stage")


class GradientFlow(BaseModel):
    """The ratio at each distance from the last state, and how many sequences it rests on."""

    distance: list[int]
    ratio: list[float]
    sequences: list[int]


class GateStats(BaseModel):
    """One gate over the test sample: mean, saturated share, histogram, per-position quartiles."""

    mean: float
    saturated: float
    histogram: list[float]
    edges: list[float]
    position: list[int]
    q25: list[float]
    median: list[float]
    q75: list[float]


class Diagnostics(BaseModel):
    """metrics/<task>/diagnostics/<cell>-seed<seed>.json: the replayed network's check against
    PyTorch, its gradient flow through time and its gates (first layer, forward direction)."""

    cell: str
    examples: int
    directions: int
    reference_max_abs_diff: float
    gradient_flow: GradientFlow
    gates: dict[str, GateStats]


class Sample(BaseModel):
    """Text a language model wrote, seeded: the prompt and what followed."""

    prompt: str
    text: str


class LanguageModelDiagnostics(BaseModel):
    """metrics/<task>/diagnostics/<cell>-seed<seed>.json of a language model: its perplexity
    on a sample of test targets when each is predicted from only the last k tokens (`all`:
    its whole context), keyed by k as text (evaluation/context.py); and a few seeded samples
    of its text (model/generate.py)."""

    context_targets: int  # sampled test targets, the same for every k and every cell
    context_perplexity: dict[str, float]
    samples: list[Sample]


def write_lm_diagnostics(path: Path, diagnostics: LanguageModelDiagnostics) -> None:
    write_model(path, diagnostics)


def read_lm_diagnostics(path: Path) -> LanguageModelDiagnostics:
    return read_model(LanguageModelDiagnostics, path, "rerun its evaluate stage")


def write_diagnostics(path: Path, diagnostics: Diagnostics) -> None:
    write_model(path, diagnostics)


def read_diagnostics(path: Path) -> Diagnostics:
    return read_model(Diagnostics, path, "rerun its evaluate stage")
