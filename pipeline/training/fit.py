"""Train one cell: Lightning fit with early stopping, best-by-validation weights, MLflow run."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from pipeline import tracking
from pipeline.config import CellParams, Family, TaskParams, TrainParams
from pipeline.data.datamodule import TextDataModule
from pipeline.data.duplicates import text_of
from pipeline.data.prepare import read_test_examples
from pipeline.data.seen import SEEN_FILE
from pipeline.errors import fail
from pipeline.files import atomic_dir
from pipeline.machine import cpu_name
from pipeline.model.inference import WEIGHTS_FILE
from pipeline.model.lightning_module import CellClassifier
from pipeline.model.networks import count_parameters
from pipeline.model.record import TrainRecord, write_record
from pipeline.paths import CHARS_FILE, VOCAB_FILE, Layout
from pipeline.training.bf16 import cpu_bf16_refusal
from pipeline.training.callbacks import EpochHistory, ResumeState, write_history
from pipeline.training.gpus import claim_gpu
from pipeline.training.inputs import FitInputs

# Known noise: batches load in the main process on purpose (tiny tensors already in memory),
# Lightning's own pytree deprecation, a resumed fit's checkpoint folder, and an advert printed
# on every fit.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"pytorch_lightning\.utilities")
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage())


def resolve_device(train: TrainParams) -> tuple[str, str]:
    """(accelerator, precision): bf16 mixed precision on a GPU that has it, fp32 otherwise."""
    on_gpu = train.accelerator == "gpu" or (train.accelerator == "auto"
                                            and torch.cuda.is_available())
    accelerator = "gpu" if on_gpu else "cpu"
    if train.precision != "auto":
        return accelerator, train.precision
    if on_gpu and torch.cuda.is_bf16_supported():
        return accelerator, "bf16-mixed"
    return accelerator, "32-true"


def rank_zero() -> bool:
    """Whether this process is rank 0 of a DDP fit (or the only process of a plain one), known
    before the Trainer exists: from the variables launchers set (RANK; Lightning's own
    launcher sets NODE_RANK and LOCAL_RANK for the processes it starts)."""
    if "RANK" in os.environ:
        return os.environ["RANK"] == "0"
    return os.environ.get("NODE_RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def build_trainer(cp: CellParams, callbacks: list[pl.Callback], scratch: Path,
                  fast_dev_run: bool = False, gpu: int | None = None,
                  checkpoints: bool = True) -> pl.Trainer:
    """The Trainer of one fit; on the GPU `gpu` (an index) where one was claimed; without
    `checkpoints`, none written (a tuning trial keeps only its score)."""
    accelerator, precision = resolve_device(cp.train)
    if accelerator == "cpu" and precision.startswith("bf16") and (
            refusal := cpu_bf16_refusal(cp.cell)):
        fail(f"train.precision {precision}: this CPU cannot run the {cp.cell} in bf16 "
             f"({refusal}); use 32-true here, or a GPU")
    if accelerator == "gpu":
        # Deterministic cuBLAS; cuDNN RNNs with inter-layer dropout stay nondeterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    devices: int | list[int] = [gpu] if gpu is not None else cp.train.devices
    distributed = not fast_dev_run and cp.train.strategy == "ddp"
    trainer = pl.Trainer(
        accelerator=accelerator, devices=devices if not fast_dev_run else 1,
        strategy="ddp" if distributed else "auto", num_nodes=cp.train.num_nodes if distributed
        else 1, use_distributed_sampler=False, precision=precision,
        max_epochs=cp.train.max_epochs,
        limit_train_batches=cp.train.limit_train_batches,
        gradient_clip_val=cp.train.grad_clip or None,
        deterministic=True if accelerator == "cpu" else "warn",
        callbacks=callbacks, logger=False, default_root_dir=scratch,
        enable_model_summary=False, fast_dev_run=fast_dev_run, enable_checkpointing=checkpoints,
        enable_progress_bar=sys.stderr.isatty(),
    )
    # Deterministic mode also fills every new tensor with NaN, a debugging aid that changes no
    # result; on the CPU it was 7% of a 700-token step (95 fills), so keep the kernels' choice
    # and drop the fill.
    torch.utils.deterministic.fill_uninitialized_memory = False
    return trainer


FITS = Path(".rnnbench") / "fits"  # under the project root; gitignored


def fit_folder(layout: Layout, cp: CellParams, data_hash: str) -> Path:
    """Where a fit keeps its checkpoints until it completes: named by the stage and a digest of
    its inputs, so that only a rerun of the same stage with the same inputs resumes from it."""
    inputs = json.dumps({"data": data_hash, "run": cp.model_dump()}, sort_keys=True)
    key = hashlib.sha256(inputs.encode()).hexdigest()[:12]
    return layout.root / FITS / f"{fit_prefix(layout, cp.cell, cp.seed)}{key}"


def fit_prefix(layout: Layout, cell: str, seed: int) -> str:
    """What the checkpoint folders of one stage's fit share (the tuned and the untuned fit of
    one seed apart), followed by 12 characters of digest."""
    return f"{layout.task}-{cell}-seed{seed}-" + ("untuned-" if layout.untuned else "")


def check_setup(cp: CellParams, module: CellClassifier, dm: TextDataModule, name: str,
                n_params: int) -> None:
    """One training and one validation batch through the whole loop, written nowhere: a check
    must not replace a trained model, its history or its MLflow run."""
    with tempfile.TemporaryDirectory(prefix="rnnbench-check-") as scratch:
        build_trainer(cp, [], Path(scratch), fast_dev_run=True).fit(module, datamodule=dm)
    print(f"{name}: setup checked (one training and one validation batch, {n_params:,} params); "
          "nothing written", file=sys.stderr)


@dataclass
class Fit:
    """One fit, built and ready to run: the settings it runs at (at their built width), its
    inputs, batches and module, and where it reports."""

    params: TaskParams
    cp: CellParams
    layout: Layout
    inputs: FitInputs
    dm: TextDataModule
    module: CellClassifier
    n_params: int
    accelerator: str
    precision: str

    @property
    def name(self) -> str:
        return (f"{self.params.name}/{self.cp.cell}/seed{self.cp.seed}"
                + (" (untuned)" if self.layout.untuned else ""))

    @property
    def settings(self) -> str | None:
        """The MLflow tag of a tuned task's fits: "tuned" or "untuned"."""
        return ("untuned" if self.layout.untuned else "tuned") if self.params.tuned else None


def build_fit(params: TaskParams, cp: CellParams, layout: Layout) -> Fit:
    """Seed everything, then read the prepared data and build the network at `cp`."""
    pl.seed_everything(cp.seed, workers=True, verbose=False)
    torch.set_num_threads(cp.train.threads)
    inputs = FitInputs.read(layout)
    cp = inputs.sized(cp)  # the width is what equal budgets change
    module = inputs.module(cp)
    return Fit(params, cp, layout, inputs, inputs.data(cp, params.evaluate.batch_size), module,
               count_parameters(module.net), *resolve_device(cp.train))


def start_run(fit: Fit) -> tuple[Any, str, str]:
    """The fit's MLflow run: (client, run id, comparison run id)."""
    return tracking.start_cell_run(
        fit.params, fit.cp, fit.inputs.data_hash, fit.layout.root.resolve(),
        {"num_parameters": fit.n_params, "vocab_size": fit.inputs.vocab_size,
         "num_classes": len(fit.inputs.labels), "accelerator": fit.accelerator,
         "precision": fit.precision}, fit.settings)


def run_fit(fit: Fit, history: EpochHistory, on_stop: Callable[[str], None]
            ) -> tuple[ModelCheckpoint, float]:
    """Lightning's fit with early stopping, resumed from the last epoch's checkpoint where a
    killed run left one; keeps the best-by-validation weights in `fit.module`. A failure or
    Ctrl-C calls `on_stop` with the run's end status first. Returns the best-checkpoint
    callback and the seconds the fit took."""
    cp, module = fit.cp, fit.module
    folder = fit_folder(fit.layout, cp, fit.inputs.data_hash)
    last_epoch = folder / "last.ckpt"
    # The checkpoints outlive a killed process (the next run resumes); they go once it is done.
    best = ModelCheckpoint(dirpath=folder, monitor=module.monitor, mode=module.mode,
                           save_top_k=1, save_weights_only=True, filename="best",
                           enable_version_counter=False)
    last = ModelCheckpoint(dirpath=folder, filename="last", save_top_k=1,
                           save_on_train_epoch_end=True, enable_version_counter=False)
    # Lightning stops only strictly above its threshold, and the logged accuracy (a float32
    # mean over batches) can land a rounding below an exact score: reaching stop_at (1.0
    # included) is enough here, within 1e-6, far below one example of any validation split.
    threshold = None if cp.train.stop_at is None else cp.train.stop_at - 1e-6
    stop = EarlyStopping(monitor=module.monitor, mode=module.mode, patience=cp.train.patience,
                         stopping_threshold=threshold)
    # one GPU per fit where fits share a machine; a DDP fit takes `devices` GPUs itself
    gpus = torch.cuda.device_count() if fit.accelerator == "gpu" and cp.train.devices == 1 else 0
    trainer: pl.Trainer | None = None
    started = time.perf_counter()
    try:
        with claim_gpu(gpus) as gpu:
            trainer = build_trainer(cp, [history, ResumeState(history, fit.dm), best, last, stop],
                                    folder, gpu=gpu)
            trainer.fit(module, datamodule=fit.dm,
                        ckpt_path=last_epoch if last_epoch.exists() else None)
    except BaseException as err:
        # Lightning turns Ctrl-C into sys.exit(1) after its own clean-up; give it back its
        # meaning, so that the run is KILLED (not FAILED) and the process exits 130.
        interrupted = isinstance(err, KeyboardInterrupt) or (
            trainer is not None and trainer.interrupted)
        on_stop("KILLED" if interrupted else "FAILED")
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    seconds = time.perf_counter() - started
    if best.best_model_path:  # no checkpoint only if no epoch validated: keep the last
        state = torch.load(best.best_model_path, weights_only=True, map_location="cpu")
        module.load_state_dict(state["state_dict"])
    return best, seconds


def save_model(fit: Fit, record: TrainRecord, history: EpochHistory) -> Path:
    """Write the model folder whole, or not at all: weights, record, vocabularies and what it
    saw (seen.json), so that it predicts on texts without the data it was trained on, and is
    judged later on examples new to it (it is logged as one MLflow Model); then its history.
    Drops this fit's checkpoints, and those of changed inputs."""
    layout, cell, seed = fit.layout, fit.cp.cell, fit.cp.seed
    model_dir = layout.model_dir(cell, seed)
    with atomic_dir(model_dir) as out:
        torch.save({k: v.cpu() for k, v in fit.module.net.state_dict().items()},
                   out / WEIGHTS_FILE)
        write_record(out, record)
        copied = [VOCAB_FILE, *[CHARS_FILE] * bool(fit.inputs.num_chars),
                  *[SEEN_FILE] * (layout.prepared / SEEN_FILE).is_file()]  # generated: no texts
        for name in copied:
            shutil.copyfile(layout.prepared / name, out / name)
    write_history(layout.history(cell, seed), history.rows)
    for done in (layout.root / FITS).glob(fit_prefix(layout, cell, seed) + "?" * 12):
        shutil.rmtree(done, ignore_errors=True)
    return model_dir


def train_cell(params: TaskParams, cp: CellParams, layout: Layout, fast_dev_run: bool = False
               ) -> TrainRecord | None:
    """Fit one cell at `cp`, the settings its caller resolved (a tuned task's study's best, or
    the untuned ones in `layout.as_untuned()`), and write its model folder and history.
    Returns the model's record; None with `fast_dev_run` (a check writes nothing) and in a
    DDP fit's processes other than rank 0."""
    fit = build_fit(params, cp, layout)
    if fast_dev_run:
        check_setup(fit.cp, fit.module, fit.dm, fit.name, fit.n_params)
        return None

    # In a DDP fit every process runs this stage; rank 0 alone logs and writes its outputs.
    lead = rank_zero()
    client, run_id, parent_id = start_run(fit) if lead else (None, "", "")
    history = EpochHistory(client, run_id, echo=lead and not sys.stderr.isatty())
    best, seconds = run_fit(
        fit, history, lambda status: tracking.end_run(client, run_id, status) if lead else None)
    if not lead:
        return None

    monitor = fit.module.monitor
    sign = 1 if fit.module.mode == "max" else -1
    best_row = (max(history.rows, key=lambda r: sign * r.get(monitor, -sign * math.inf))
                if best.best_model_path and history.rows else None)
    record = TrainRecord(
        task=params.name, cell=cp.cell, seed=cp.seed, run_id=run_id, parent_run_id=parent_id,
        tracking_uri=client.tracking_uri, num_parameters=fit.n_params,
        train_seconds=round(seconds, 2), epochs=len(history.rows),
        best_epoch=best_row["epoch"] if best_row else 0, monitor=monitor,
        best_val=round(float(best.best_model_score or 0), 6), accelerator=fit.accelerator,
        precision=fit.precision, cpu=cpu_name(), data_hash=fit.inputs.data_hash,
        family=fit.inputs.family,
        vocab_size=fit.inputs.vocab_size, num_chars=fit.inputs.num_chars,
        labels=fit.inputs.labels, params=fit.cp, prepare=params.prepare)
    model_dir = save_model(fit, record, history)

    # A task's model (the synthetic sweep's cells read symbol ids, not texts); a language
    # model's example input is texts, as a user hands them over
    if params.suite is None:
        examples = read_test_examples(layout.prepared, 2)
        if fit.inputs.family == Family.LANGUAGE_MODEL:
            examples = [{"text": text_of(ex)} for ex in examples]
        tracking.log_model(client, run_id, model_dir, examples)
    tracking.log_files(client, run_id, [(layout.prepared / "stats.json", "data"),
                                        (layout.history(cp.cell, cp.seed), "history")])
    tracking.log_metrics(client, run_id, {"train_seconds": seconds,
                                          f"best_{monitor}": record.best_val,
                                          "num_parameters": fit.n_params})
    tracking.end_run(client, run_id, "FINISHED")
    print(f"{fit.name}: best {monitor} {record.best_val:.4f} at epoch {record.best_epoch} "
          f"({record.epochs} epochs, {seconds:.1f}s, {fit.n_params:,} params); "
          f"MLflow run {run_id}", file=sys.stderr)
    return record
