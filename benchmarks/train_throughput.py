"""Training-step throughput of rnnbench's loop against a bare PyTorch loop, per cell, and
padding waste.

Both loops train the same network, from the same initial weights, on the same batches, with
the same optimizer and clipping: the default task's length-bucketed batches (data/prepared),
and 700-token batches (64 rows of 350-700 random word ids). The ratio project/bare shows what
Lightning, logging and callbacks cost per step. The padding fraction is measured on the train
split with and without length bucketing.

    python -m benchmarks.train_throughput [--cells rnn lstm gru] [--steps 120] [--out DIR]
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
from benchmarks.baselines import synthetic_batch, uniform_lengths
from pipeline.config import load_params
from pipeline.data.loading import Batch, BucketBatchSampler, EncodedSplit, collate, padding_fraction
from pipeline.model.lightning_module import CellClassifier
from pipeline.model.networks import build_network
from pipeline.paths import Layout
from pipeline.training.fit import build_trainer

WARMUP = 10
LONG, VOCAB_LONG = 700, 20_000


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
    for step, (ids, lengths, labels, *_) in enumerate(batches):
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
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--long-steps", type=int, default=6, help="timed 700-token steps")
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
                     "steps": args.steps}

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

    for cell in args.cells:
        cp = params.for_cell(cell)
        default = fixed_batches(train, bs, cp.train.bucket_pool, cp.seed, args.steps)
        long = [collate_synthetic(b) for b in long_batches(args.long_steps)]
        results[cell] = {
            "default": compare_loops(cell, cp, default, vocab_size, n_labels, args.repeats),
            f"{LONG}_tokens": compare_loops(cell, cp, long, VOCAB_LONG, 2, args.repeats),
        }
    save_results(args.out, f"train_throughput_{platform.machine()}", results)


def long_batches(steps: int) -> list[tuple]:
    """Batches of the document-length benchmark: 64 rows of LONG/2..LONG tokens."""
    gen = torch.Generator().manual_seed(1)
    return [synthetic_batch(uniform_lengths(64, LONG, gen), VOCAB_LONG, gen)
            for _ in range(steps + WARMUP)]


def collate_synthetic(batch: tuple) -> Batch:
    """A synthetic batch, longest row first, as BucketBatchSampler delivers them."""
    ids, lengths, labels = batch
    order = lengths.argsort(descending=True)
    return Batch(ids[order], lengths[order], labels[order])


def compare_loops(cell: str, cp, batches: list, vocab_size: int, n_labels: int, repeats: int
                  ) -> dict:
    """Steps/s and tokens/s of rnnbench's loop and of a bare loop, interleaved (best run)."""
    rates: dict[str, list[float]] = {"project": [], "bare": []}
    for _ in range(repeats):  # interleaved, so drift hits both loops alike
        for name, loop in (("bare", bare_loop), ("project", project_loop)):
            torch.manual_seed(0)
            module = CellClassifier(
                build_network("classification", cell, vocab_size, n_labels, cp.model), cp.train)
            rates[name].append(loop(module, cp, batches))
    best = {k: max(v) for k, v in rates.items()}
    tokens = sum(int(b[1].sum()) for b in batches[WARMUP:]) / len(batches[WARMUP:])
    return {
        "project_steps_per_s": round(best["project"], 2),
        "bare_steps_per_s": round(best["bare"], 2),
        "project_over_bare": round(best["project"] / best["bare"], 3),
        "project_tokens_per_s": round(best["project"] * tokens),
        "all_runs": {k: [round(x, 2) for x in v] for k, v in rates.items()},
    }


if __name__ == "__main__":
    main()
