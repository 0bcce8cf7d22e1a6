"""Train one cell: Lightning fit with early stopping, best-by-validation weights, MLflow run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from pipeline import tracking
from pipeline.config import CellParams, TaskParams, TrainParams
from pipeline.data.datamodule import TextDataModule
from pipeline.data.prepare import read_test_examples
from pipeline.errors import fail, run_guarded
from pipeline.files import atomic_dir, one_at_a_time
from pipeline.model.inference import WEIGHTS_FILE
from pipeline.model.lightning_module import CellClassifier
from pipeline.model.networks import count_parameters
from pipeline.model.record import TrainRecord, write_record
from pipeline.paths import CHARS_FILE, VOCAB_FILE, Layout
from pipeline.training.bf16 import cpu_bf16_refusal
from pipeline.training.callbacks import EpochHistory, ResumeState, write_history
from pipeline.training.gpus import claim_gpu
from pipeline.training.inputs import FitInputs
from pipeline.tuning.settings import tuned, tuning_on

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


def train_cell(params: TaskParams, cell: str, layout: Layout, seed: int | None = None,
               fast_dev_run: bool = False) -> TrainRecord | None:
    """Fit one cell on one task with one seed (default: the first), write its model folder
    and history; returns the model's record (None with `fast_dev_run`: a check writes
    nothing; and in a DDP fit's processes other than rank 0)."""
    cp = tuned(params, params.for_cell(cell, seed), layout)
    seed = cp.seed
    inputs = FitInputs.read(layout)
    family, labels, data_hash = inputs.family, inputs.labels, inputs.data_hash
    pl.seed_everything(seed, workers=True, verbose=False)
    torch.set_num_threads(cp.train.threads)
    cp = inputs.sized(cp)  # the width is what equal budgets change
    dm = inputs.data(cp, params.evaluate.batch_size)
    module = inputs.module(cp)
    n_params = count_parameters(module.net)
    accelerator, precision = resolve_device(cp.train)
    if fast_dev_run:
        check_setup(cp, module, dm, f"{params.name}/{cell}/seed{seed}", n_params)
        return None

    # In a DDP fit every process runs this stage; rank 0 alone logs and writes its outputs.
    lead = rank_zero()
    settings = ("untuned" if layout.untuned else "tuned") if tuning_on(params) else None
    client, run_id, parent_id = tracking.start_cell_run(
        params, cp, data_hash, layout.root.resolve(),
        {"num_parameters": n_params, "vocab_size": inputs.vocab_size,
         "num_classes": len(labels), "accelerator": accelerator, "precision": precision},
        settings) if lead else (None, "", "")
    history = EpochHistory(client, run_id, echo=lead and not sys.stderr.isatty())
    folder = fit_folder(layout, cp, data_hash)
    last_epoch = folder / "last.ckpt"
    resume = ResumeState(history, dm)
    # The checkpoints outlive a killed process (the next run resumes); they go once it is done.
    best = ModelCheckpoint(dirpath=folder, monitor=module.monitor, mode="max",
                           save_top_k=1, save_weights_only=True, filename="best",
                           enable_version_counter=False)
    last = ModelCheckpoint(dirpath=folder, filename="last", save_top_k=1,
                           save_on_train_epoch_end=True, enable_version_counter=False)
    # Lightning stops only strictly above its threshold, and the logged accuracy (a float32
    # mean over batches) can land a rounding below an exact score: reaching stop_at (1.0
    # included) is enough here, within 1e-6, far below one example of any validation split.
    threshold = None if cp.train.stop_at is None else cp.train.stop_at - 1e-6
    stop = EarlyStopping(monitor=module.monitor, mode="max", patience=cp.train.patience,
                         stopping_threshold=threshold)
    # one GPU per fit where fits share a machine; a DDP fit takes `devices` GPUs itself
    gpus = torch.cuda.device_count() if accelerator == "gpu" and cp.train.devices == 1 else 0
    trainer: pl.Trainer | None = None
    started = time.perf_counter()
    try:
        with claim_gpu(gpus) as gpu:
            trainer = build_trainer(cp, [history, resume, best, last, stop], folder, gpu=gpu)
            trainer.fit(module, datamodule=dm,
                        ckpt_path=last_epoch if last_epoch.exists() else None)
    except BaseException as err:
        # Lightning turns Ctrl-C into sys.exit(1) after its own clean-up; give it back its
        # meaning, so that the run is KILLED (not FAILED) and the process exits 130.
        interrupted = isinstance(err, KeyboardInterrupt) or (
            trainer is not None and trainer.interrupted)
        if lead:
            tracking.end_run(client, run_id, "KILLED" if interrupted else "FAILED")
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    seconds = time.perf_counter() - started
    if not lead:
        return None
    if best.best_model_path:  # no checkpoint only if no epoch validated: keep the last
        state = torch.load(best.best_model_path, weights_only=True, map_location="cpu")
        module.load_state_dict(state["state_dict"])
    for done in folder.parent.glob(fit_prefix(layout, cell, seed) + "?" * 12):
        shutil.rmtree(done, ignore_errors=True)  # this fit's, and those of changed inputs

    best_row = (max(history.rows, key=lambda r: r.get(module.monitor, 0))
                if best.best_model_path and history.rows else None)
    record = TrainRecord(
        task=params.name, cell=cell, seed=seed, run_id=run_id, parent_run_id=parent_id,
        tracking_uri=client.tracking_uri, num_parameters=n_params,
        train_seconds=round(seconds, 2), epochs=len(history.rows),
        best_epoch=best_row["epoch"] if best_row else 0, monitor=module.monitor,
        best_val=round(float(best.best_model_score or 0), 6), accelerator=accelerator,
        precision=precision, data_hash=data_hash, family=family, vocab_size=inputs.vocab_size,
        num_chars=inputs.num_chars, labels=labels, params=cp, prepare=params.prepare)
    # The folder is the whole model: weights, record and vocabularies, so that it predicts on
    # texts without the data it was trained on (and is logged as one MLflow Model).
    model_dir = layout.model_dir(cell, seed)
    # With tuning on, the untuned fit of this seed writes its folder inside this one's, maybe
    # at the same moment: they take turns, and this one's keeps what that one wrote.
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (one_at_a_time(folder.parent / f"{layout.task}-{cell}-seed{seed}")
          if tuning_on(params) else contextlib.nullcontext()):
        with atomic_dir(model_dir) as out:
            torch.save({k: v.cpu() for k, v in module.net.state_dict().items()},
                       out / WEIGHTS_FILE)
            write_record(out, record)
            for name in (VOCAB_FILE, CHARS_FILE) if inputs.num_chars else (VOCAB_FILE,):
                shutil.copyfile(layout.prepared / name, out / name)
            if not layout.untuned and (model_dir / "untuned").is_dir():
                (model_dir / "untuned").rename(out / "untuned")
        write_history(layout.history(cell, seed), history.rows)

    if params.suite is None:  # a text task; the synthetic sweep's cells read symbol ids
        tracking.log_model(client, run_id, model_dir, read_test_examples(layout.prepared, 2))
    tracking.log_files(client, run_id, [(layout.prepared / "stats.json", "data"),
                                        (layout.history(cell, seed), "history")])
    tracking.log_metrics(client, run_id, {"train_seconds": seconds,
                                          f"best_{module.monitor}": record.best_val,
                                          "num_parameters": n_params})
    tracking.end_run(client, run_id, "FINISHED")
    print(f"{params.name}/{cell}/seed{seed}{' (untuned)' if layout.untuned else ''}: "
          f"best {module.monitor} {record.best_val:.4f} "
          f"at epoch {record.best_epoch} ({record.epochs} epochs, {seconds:.1f}s, "
          f"{n_params:,} params); MLflow run {run_id}", file=sys.stderr)
    return record


def train_stage(params: TaskParams, cell: str, layout: Layout, seed: int | None = None
                ) -> TrainRecord | None:
    """Stage `train@<task>-<cell>-<seed>`: the cell at its settings; with tuning on, at its
    study's best and then, same seed, at the untuned settings, which the report sets against
    them (what tuning gained, and whether it changed the ranking)."""
    if not tuning_on(params):
        return train_cell(params, cell, layout, seed)
    # Two independent single-thread fits: side by side where a second core is free (each
    # gives the same numbers either way), which halves the stage under a plain `dvc repro`.
    untuned = (params, cell, layout.as_untuned(), seed)
    if (os.cpu_count() or 1) < 2 or params.train.devices > 1:
        record = train_cell(params, cell, layout, seed)
        train_cell(*untuned)
        return record
    beside = multiprocessing.get_context("spawn").Process(target=fit_beside, args=untuned)
    beside.start()
    try:
        record = train_cell(params, cell, layout, seed)
    finally:
        beside.join()
    if beside.exitcode:
        fail(f"train@{params.name}-{cell}-{seed}: the untuned fit failed "
             f"(exit {beside.exitcode}; its error is above)")
    return record


def fit_beside(params: TaskParams, cell: str, layout: Layout, seed: int) -> None:
    """A fit in a process of its own, reporting as a stage does: bad input in one line,
    Ctrl-C as exit 130, no traceback."""
    run_guarded(lambda: train_cell(params, cell, layout, seed))
