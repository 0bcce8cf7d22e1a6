"""One Optuna study per task and cell (stage `tune@<task>-<cell>`), so that cells are compared
each at its own best settings rather than at settings chosen on one of them.

Every cell gets the same budget: `tune.trials` finished trials (pruned ones count; a failed
one, such as one interrupted, is run again), the same pruner and the same sampler seed over
the same space (less the LSTM's forget-gate bias for the other cells). Trial 0 is the untuned
settings, so the study also scores the default at that budget. Trials train on the training
split and are scored on the validation split; their data module never loads the test split.
The study is kept in an RDB storage (a sqlite file under .rnnbench/tuning/, or a team's
database): a rerun after an interruption resumes it, and several workers may run trials of one
study at once (Optuna's distributed mode).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from sqlalchemy.exc import SQLAlchemyError

from pipeline import tracking
from pipeline.config import CellParams, TaskParams
from pipeline.config.tune import Dimension
from pipeline.errors import fail
from pipeline.files import one_at_a_time
from pipeline.model.record import lower_is_better, monitor_for
from pipeline.paths import Layout
from pipeline.training.fit import build_trainer
from pipeline.training.inputs import FitInputs
from pipeline.tuning.settings import PERMUTATIONS, TrialSummary, TuningRecord, Value, apply

STUDIES = Path(".rnnbench") / "tuning"  # under the project root; gitignored
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
UNTUNED, FITTED = "untuned", "fitted"  # trial user attributes: trial 0; the settings fitted


class Prune(pl.Callback):
    """Optuna's pruning inside Lightning's loop: report each epoch's validation score, stop
    the trial when the pruner says so. (optuna-integration's callback derives from the
    `lightning` package's Callback, which pytorch_lightning's Trainer refuses.)"""

    def __init__(self, trial: optuna.Trial, monitor: str):
        self.trial, self.monitor = trial, monitor
        self.better = min if lower_is_better(monitor) else max
        self.best: float | None = None

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.best = value if self.best is None else self.better(self.best, value)
        self.trial.report(value, trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {trainer.current_epoch + 1}: {value:.4f}")


def suggest(trial: optuna.Trial, key: str, dim: Dimension) -> Value:
    if dim.choices is not None:
        return trial.suggest_categorical(key, dim.choices)
    assert dim.low is not None and dim.high is not None
    return trial.suggest_float(key, dim.low, dim.high, log=dim.log)


def setting_of(cp: CellParams, key: str) -> Value | None:
    section, name = key.split(".", 1)
    return getattr(getattr(cp, section), name)


def defaults(cp: CellParams, dims: dict[str, Dimension]) -> dict[str, Value]:
    """The untuned settings the space can hold: what trial 0 tells the sampler. Trial 0 fits
    at the untuned settings exactly, those outside the space included (a batch of 16 where the
    space offers 32-128, `forget_bias: null` for PyTorch's initialization): the sampler then
    learns nothing of those keys from it, rather than trial 0 drawing them."""
    out = {}
    for key, dim in dims.items():
        value = setting_of(cp, key)
        inside = (value in dim.choices if dim.choices is not None else
                  value is not None and dim.low <= value <= dim.high)  # type: ignore[operator]
        if inside:
            out[key] = value  # type: ignore[assignment]
    return out


def study_name(params: TaskParams, base: CellParams, dims: dict[str, Dimension],
               data_hash: str) -> str:
    """Named by everything a trial's score depends on except the number of trials, so that a
    larger budget continues the same study and any other change starts a new one."""
    tp = params.tune
    inputs = {"space": {k: d.model_dump() for k, d in dims.items()}, "base": base.model_dump(),
              "data": data_hash, "pruner": [tp.pruner, tp.startup_trials, tp.warmup_epochs],
              "sampler_seed": tp.sampler_seed, "eval": params.evaluate.batch_size}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    return f"{params.name}-{base.cell}-{key}"


def storage_for(params: TaskParams, layout: Layout, name: str) -> optuna.storages.RDBStorage:
    """The study's storage: a sqlite file of the project's, or `tune.storage` (a team's
    database; its password from PGPASSWORD). A trial whose process died (kill -9) stops
    beating, is failed after 90 s, and runs again."""
    url, db = params.tune.storage, None
    if url is None:  # the real project's, also from a DVC experiment's temporary copy
        folder = tracking.project_root(layout.root) / STUDIES
        folder.mkdir(parents=True, exist_ok=True)
        db = (folder / f"{name}.db").resolve()
        url = f"sqlite:///{db}"
    elif tracking.is_database(url):
        tracking.check_database(url, "tune.storage")  # seconds, not the driver's retries
    try:
        # processes opening a new sqlite file would each create its tables: one at a time
        with one_at_a_time(db) if db else contextlib.nullcontext(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        fail(f"tune.storage {url}: cannot open the study's storage: {reason}")


def run_study(params: TaskParams, cell: str, layout: Layout) -> TuningRecord:
    tp = params.tune
    inputs = FitInputs.read(layout)
    base = params.for_cell(cell)  # the first seed: every trial starts from the same draw
    if tp.max_epochs is not None:
        base = apply(base, {"train.max_epochs": tp.max_epochs})
    dims = tp.dimensions(cell)
    monitor = monitor_for(inputs.labels, inputs.family)
    name = study_name(params, base, dims, inputs.data_hash)
    # errors reach the user as one line (run_guarded); Optuna would log each with its traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    pruner = (optuna.pruners.MedianPruner(tp.startup_trials, tp.warmup_epochs)
              if tp.pruner == "median" else optuna.pruners.NopPruner())
    study = optuna.create_study(
        study_name=name, storage=storage_for(params, layout, name), direction=direction(monitor),
        pruner=pruner, load_if_exists=True)
    # Seeded by the trials already there: a resumed study draws on instead of repeating the
    # first draws of its seed (and an uninterrupted one gets `sampler_seed` itself).
    study.sampler = optuna.samplers.TPESampler(seed=tp.sampler_seed + len(study.trials))
    if not study.trials:
        study.enqueue_trial(defaults(base, dims), user_attrs={UNTUNED: True})

    def objective(trial: optuna.Trial) -> float:
        # trial 0 suggests only the keys it fixed, and fits at `base` itself
        keys = defaults(base, dims) if trial.user_attrs.get(UNTUNED) else dims
        values = {key: suggest(trial, key, dims[key]) for key in keys}
        cp = apply(base, values)
        trial.set_user_attr(FITTED, {key: setting_of(cp, key) for key in dims})
        return fit_trial(params, trial, cp, inputs, values, monitor)

    while (done := len(finished(study))) < tp.trials:
        study.optimize(objective, n_trials=tp.trials - done)
    return summarize(study, tp.trials, cell, monitor, dims)


def direction(monitor: str) -> str:
    return "minimize" if lower_is_better(monitor) else "maximize"


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state in FINISHED]


def fit_trial(params: TaskParams, trial: optuna.Trial, cp: CellParams, inputs: FitInputs,
              values: dict[str, Value], monitor: str) -> float:
    """One trial: a fit on the training split, scored by its best validation epoch."""
    pl.seed_everything(cp.seed, workers=True, verbose=False)
    torch.set_num_threads(cp.train.threads)
    cp = inputs.sized(cp)
    dm = inputs.data(cp, params.evaluate.batch_size, splits=("train", "val"))
    module = inputs.module(cp)
    client, run_id = tracking.start_trial_run(params, cp.cell, trial.number, values,
                                              inputs.data_hash, inputs.layout.root.resolve())
    prune = Prune(trial, monitor)
    stop = EarlyStopping(monitor=monitor, mode="min" if lower_is_better(monitor) else "max",
                         patience=cp.train.patience)
    trainer: pl.Trainer | None = None
    state = "FAILED"
    try:
        with tempfile.TemporaryDirectory(prefix="rnnbench-trial-") as scratch:
            trainer = build_trainer(cp, [prune, stop], Path(scratch), checkpoints=False)
            trainer.fit(module, datamodule=dm)
        state = "FINISHED"
    except BaseException as err:
        # Lightning turns Ctrl-C into sys.exit(1): give it back its meaning, so that Optuna
        # fails the trial (a rerun runs it again) and the stage exits 130.
        # (Lightning marks any failed fit interrupted: only its SystemExit is a Ctrl-C)
        if isinstance(err, KeyboardInterrupt) or (
                isinstance(err, SystemExit) and trainer is not None and trainer.interrupted):
            state = "KILLED"
            raise KeyboardInterrupt from None
        if isinstance(err, optuna.TrialPruned):
            state = "FINISHED"
            tracking.set_tags(client, run_id, {f"{tracking.TAG}.trial_state": "PRUNED"})
            print(f"{params.name}/{cp.cell} trial {trial.number}: pruned ({err}; {values})",
                  file=sys.stderr)
        raise
    finally:
        if prune.best is not None:
            tracking.log_metrics(client, run_id, {f"best_{monitor}": prune.best})
        tracking.end_run(client, run_id, state)
    print(f"{params.name}/{cp.cell} trial {trial.number}: best {monitor} "
          f"{prune.best or 0:.4f} ({values})", file=sys.stderr)
    if prune.best is not None:
        return prune.best
    return math.inf if lower_is_better(monitor) else 0.0  # no epoch validated: the worst


def summarize(study: optuna.Study, budget: int, cell: str, monitor: str,
              dims: dict[str, Any]) -> TuningRecord:
    """The record of the study's first `budget` finished trials: a study that once ran more
    (a larger budget earlier) still gives this cell exactly what every other cell gets."""
    done = finished(study)[:budget]
    complete = [t for t in done if t.state == optuna.trial.TrialState.COMPLETE]
    # as Optuna's best trial: a complete one (a pruned trial's value is where it was stopped)
    sign = -1 if lower_is_better(monitor) else 1
    best = max(complete or done,
               key=lambda t: -math.inf if t.value is None else sign * t.value)
    importance: dict[str, float] = {}
    importance_p = None
    # fANOVA apportions the variance of the scores: none when every trial scored the same
    if len({t.value for t in complete}) >= 2 and len(dims) >= 2:
        importance, importance_p = importance_test(done, list(dims))
    first = next((t for t in done if t.number == 0), None)
    return TuningRecord(
        enabled=True, cell=cell, settings=best.user_attrs.get(FITTED, best.params),
        monitor=monitor, trials=len(done),
        pruned=len(done) - len(complete), best_trial=best.number,
        best_value=round(best.value, 6) if best.value is not None else None,
        default_value=round(first.value, 6) if first and first.value is not None else None,
        study=study.study_name, importance=importance, importance_p=importance_p,
        history=[TrialSummary(number=t.number, state=t.state.name,
                              value=None if t.value is None else round(t.value, 6),
                              params=t.user_attrs.get(FITTED, t.params)) for t in done])


def fanova(trials: list[optuna.trial.FrozenTrial], keys: list[str]) -> dict[str, float]:
    study = optuna.create_study(direction="maximize")  # in memory: these trials only
    study.add_trials(trials)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return optuna.importance.get_param_importances(study, evaluator=evaluator, params=keys)


def importance_test(trials: list[optuna.trial.FrozenTrial], keys: list[str],
                    permutations: int = PERMUTATIONS) -> tuple[dict[str, float], float]:
    """fANOVA's shares, and a permutation p-value for the largest: how often the same trials
    with their scores shuffled give some setting as large a share. The shares always sum to 1,
    so pure noise still crowns a setting (measured: the largest of 5 shares is 0.36-0.40 in the
    median and 0.57-0.64 at the 95th percentile, at 5, 10, 20 and 40 trials alike): no trial
    count makes them meaningful by itself, only scores that depend on the settings."""
    shares = fanova(trials, keys)
    scored = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]  # as fANOVA
    values = np.array([t.value for t in scored])
    rng = np.random.default_rng(0)
    above = 0
    for _ in range(permutations):
        shuffled = [optuna.trial.create_trial(params=t.params, distributions=t.distributions,
                                              value=float(v))
                    for t, v in zip(scored, rng.permutation(values), strict=True)]
        above += max(fanova(shuffled, keys).values()) >= max(shares.values())
    return ({k: round(v, 4) for k, v in shares.items()},
            round((1 + above) / (1 + permutations), 4))
