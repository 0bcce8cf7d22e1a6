"""Training-step throughput of rnnbench's loop against a bare PyTorch loop, and padding waste.

Both loops train the same network, from the same initial weights, on the same batches
(length-bucketed, from data/prepared), with the same optimizer and clipping. The ratio
project/bare shows what Lightning, logging and callbacks cost per step. The padding fraction
is measured on the train split with and without length bucketing.

    python -m benchmarks.train_throughput [--cell lstm] [--steps 120] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.nn import functional as F

from benchmarks import save_results
from pipeline.config import load_params
from pipeline.data import BucketBatchSampler, EncodedSplit, collate, padding_fraction
from pipeline.module import CellClassifier
from pipeline.paths import Layout
from pipeline.training import build_trainer

WARMUP = 10


class StepTimer(pl.Callback):
    """Wall time of training steps after a warm-up, measured inside Lightning's loop."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.steps = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == WARMUP:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx >= WARMUP:
            self.steps += 1
            self.elapsed = time.perf_counter() - self.start


def fixed_batches(split: EncodedSplit, batch_size: int, pool: int, seed: int, steps: int):
    sampler = BucketBatchSampler(split.lengths, batch_size, pool, shuffle=True, seed=seed)
    batches = [collate([split[i] for i in idx]) for idx in sampler][: steps + WARMUP]
    return batches


def project_loop(module: CellClassifier, cp, batches) -> float:
    timer = StepTimer()
    cp = cp.model_copy(update={"train": cp.train.model_copy(update={"max_epochs": 1})})
    trainer = build_trainer(cp, [timer], Path("/tmp/rnnbench-bench"))
    trainer.limit_val_batches = 0
    trainer.num_sanity_val_steps = 0
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer.fit(module, train_dataloaders=loader)
    return timer.steps / timer.elapsed


def bare_loop(module: CellClassifier, cp, batches) -> float:
    net = module.net.train()
    opt = module.configure_optimizers()
    for step, (ids, lengths, labels, _) in enumerate(batches):
        if step == WARMUP:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(ids, lengths), labels)
        loss.backward()
        if cp.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cp.train.grad_clip)
        opt.step()
    return (len(batches) - WARMUP) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--task", default="sentiment", help="a prepared task (dvc repro first)")
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()

    params, layout = load_params().for_task(args.task), Layout(Path("."), args.task)
    vocab_size = len(json.loads((layout.prepared / "vocab.json").read_text()))
    n_labels = len(json.loads((layout.prepared / "labels.json").read_text()))
    train = EncodedSplit(layout.split("train"))
    results: dict = {"machine": f"{platform.machine()} {torch.get_num_threads()} threads",
                     "torch": torch.__version__, "lightning": pl.__version__,
                     "cell": args.cell, "steps": args.steps}

    lens = train.lengths.tolist()
    bs = params.train.batch_size
    order = list(range(len(lens)))
    random.Random(0).shuffle(order)
    results["padding_fraction"] = {
        "random_batches": round(padding_fraction(lens, [order[i:i + bs]
                                                        for i in range(0, len(order), bs)]), 4),
        "bucketed": round(padding_fraction(lens, list(BucketBatchSampler(
            lens, bs, params.train.bucket_pool, seed=0))), 4),
    }

    for pack in (True, False):
        cp = params.for_cell(args.cell)
        cp = cp.model_copy(update={"model": cp.model.model_copy(update={"pack_sequences": pack})})
        batches = fixed_batches(train, bs, cp.train.bucket_pool, cp.seed, args.steps)
        rates: dict[str, list[float]] = {"project": [], "bare": []}
        for _ in range(args.repeats):  # interleaved, so drift hits both loops alike
            for name, loop in (("bare", bare_loop), ("project", project_loop)):
                torch.manual_seed(0)
                module = CellClassifier(args.cell, vocab_size, n_labels, cp.model.model_dump(),
                                        cp.train.model_dump())
                rates[name].append(loop(module, cp, batches))
        best = {k: max(v) for k, v in rates.items()}
        results["packed" if pack else "padded"] = {
            "project_steps_per_s": round(best["project"], 2),
            "bare_steps_per_s": round(best["bare"], 2),
            "project_over_bare": round(best["project"] / best["bare"], 3),
            "all_runs": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        }
    save_results(args.out, f"train_throughput_{args.cell}_{platform.machine()}", results)


if __name__ == "__main__":
    main()
