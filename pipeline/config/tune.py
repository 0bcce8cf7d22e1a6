"""params.yaml's `tune` section: an Optuna study per task and cell before the comparison, with
the same budget for every cell, over a search space of model and train settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from pipeline.config.sections import ModelParams, Section, TrainParams, database_uri

SECTIONS = {"model": ModelParams, "train": TrainParams}
# Settings a study may not change: they decide where and how a fit runs, not what it learns,
# or are the study's own (epochs per trial).
FIXED = {"accelerator", "precision", "devices", "strategy", "num_nodes", "threads",
         "limit_train_batches", "max_epochs", "patience", "stop_at", "sizing"}


class Dimension(Section):
    """One tuned setting: a range (`low`, `high`, `log` for a log-uniform draw) or `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[float | int | str | bool] | None = Field(default=None, min_length=2)

    @model_validator(mode="after")
    def _range_or_choices(self) -> Dimension:
        ranged = self.low is not None or self.high is not None
        if ranged == (self.choices is not None):
            raise ValueError("expected {low, high} (optionally log: true) or {choices: [...]}")
        if ranged:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"expected low < high, got low {self.low}, high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError(f"log: true needs low > 0, got {self.low}")
        elif self.log:
            raise ValueError("log applies to a range, not to choices")
        return self


class TuneParams(Section):
    enabled: bool
    trials: PositiveInt  # per task and cell: finished trials, pruned ones included
    max_epochs: PositiveInt | None  # per trial; None: the task's train.max_epochs
    pruner: Literal["median", "none"]
    startup_trials: NonNegativeInt  # trials before the median pruner stops any
    warmup_epochs: NonNegativeInt  # epochs of every trial before it may be stopped
    sampler_seed: int  # the TPE sampler's seed: the same for every cell
    storage: str | None  # None: a sqlite file per study in .rnnbench/tuning/
    space: dict[Literal["model", "train"], dict[str, Dimension]]

    _no_password = field_validator("storage")(database_uri)

    @field_validator("space")
    @classmethod
    def _known_keys(cls, space: dict[str, dict[str, Dimension]]
                    ) -> dict[str, dict[str, Dimension]]:
        for section, keys in space.items():
            for key in keys:
                if key in FIXED or key not in SECTIONS[section].model_fields:
                    allowed = sorted(set(SECTIONS[section].model_fields) - FIXED)
                    raise ValueError(f"{section}.{key}: not a tunable {section} setting; "
                                     f"expected one of {', '.join(allowed)}")
        if not any(space.values()):
            raise ValueError("empty: name at least one setting to tune")
        return space

    def dimensions(self, cell: str) -> dict[str, Dimension]:
        """The space one cell is searched over, keyed `section.key`: the forget gate's bias is
        an LSTM's alone, so the other cells' trials do not spend draws on it."""
        return {f"{section}.{key}": dim for section, keys in self.space.items()
                for key, dim in keys.items()
                if not (key == "forget_bias" and cell != "lstm")}
