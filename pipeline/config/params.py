"""All of params.yaml, and how one task's or one cell's settings resolve from it: the shared
sections, then `task.<name>` (or `longrange`), then `overrides.<cell>`."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from pipeline.config.sections import (
    CELLS,
    Cell,
    CellParams,
    DataParams,
    EvaluateParams,
    ModelParams,
    PrepareParams,
    Section,
    TrackingParams,
    TrainParams,
    describe,
    each_once,
    empty_if_none,
)
from pipeline.config.tune import TuneParams
from pipeline.errors import fail

TASK_SECTIONS = ("data", "prepare", "model", "train")
TASK_NAME = r"^[a-z][a-z0-9_]*$"  # a folder and DVC stage name: data/<task>, train@<task>-<cell>
REPLACED_WHOLE = {"source", "vectors"}  # a task's new source is never mixed with the old


class TaskChanges(Section):
    """`task.<name>`: the keys one task changes in the shared data/prepare/model/train sections."""

    data: dict[str, Any]
    prepare: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]

    _none_is_empty = field_validator(*TASK_SECTIONS, mode="before")(empty_if_none)


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
    tune: TuneParams

    _unique = field_validator("cells", "seeds")(each_once)

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
            raise ValueError(describe(err, prefix=f"overrides.{cell}.", skip=1)) from None


class LongRangeParams(Section):
    """`longrange`: the synthetic tasks (pipeline/data/synthetic.py) and the lengths they sweep."""

    # [] skips the sweep (DVC then has no generate or longrange stage)
    problems: list[Literal["recall", "adding"]]
    lengths: list[int]
    examples: int = Field(ge=100)  # generated per problem and length, split 80/10/10
    data_seed: int
    model: dict[str, Any]  # changes to the shared model section (e.g. unidirectional)
    train: dict[str, Any]  # changes to the shared train section

    _unique = field_validator("problems", "lengths")(each_once)

    @field_validator("lengths")
    @classmethod
    def _long_enough(cls, values: list[int]) -> list[int]:
        if any(n < 2 for n in values):
            raise ValueError(f"lengths of at least 2 steps, got {values}")
        return values

    _none_is_empty = field_validator("model", "train", mode="before")(empty_if_none)


class TaskParams(SharedParams):
    """One task's settings: the shared sections after `task.<name>` (or `longrange`)."""

    name: str
    suite: str | None = None  # generated tasks share one MLflow experiment: "longrange"

    @property
    def experiment(self) -> str:
        """The MLflow experiment its runs go to: tracking.experiment, else the suite's or the
        task's name."""
        return self.tracking.experiment or self.suite or self.name

    @property
    def tuned(self) -> bool:
        """Whether its cells train at their studies' best settings, each seed also once at the
        untuned ones (in stage `train@`): text tasks with tune.enabled; the synthetic sweep
        keeps its own settings."""
        return self.tune.enabled and self.suite is None


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
        if self.longrange.problems and self.longrange.lengths:  # its settings resolve
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
            raise ValueError(describe(err, prefix=f"{where}.")) from None

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
