"""Accelerator throughput at IMDB-like lengths: per cell, training and inference tokens/s for
batch sizes 64-512, fp32 against bf16 mixed precision, rnnbench's exact encoder against
PyTorch's packed and padded paths, and rnnbench's Lightning loop against a bare loop.

Reviews are synthetic word ids with IMDB's length profile (log-normal, median 230 tokens, tail
clipped at 2,500), batched as training batches them (length buckets). Tokens/s counts real
tokens only, so a path that computes padding pays for it. Written for a CUDA GPU; `--small`
runs the same code on the CPU at toy sizes (the test suite does this), without bf16 for a cell
this CPU cannot run in bf16 (the results say so under the cell's `skipped`).

    python -m benchmarks.gpu [--small] [--cells lstm gru rnn] [--out DIR]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from benchmarks import save_results
from benchmarks.baselines import (
    bare_step,
    classifier_params,
    imdb_lengths,
    seconds_per_call,
    synthetic_batch,
    with_encoder,
)
from pipeline.config import CellParams, ModelParams, TrainParams
from pipeline.data.loading import Batch, BucketBatchSampler
from pipeline.model.lightning_module import CellClassifier
from pipeline.model.networks import build_network
from pipeline.training.bf16 import cpu_bf16_refusal
from pipeline.training.fit import build_trainer

SIZES = {  # full run on a GPU / toy run on the CPU
    "full": {"reviews": 4096, "longest": 2500, "batches": [64, 128, 256, 512], "steps": 10,
             "hidden": 256, "embedding": 128, "vocab": 30_000},
    "small": {"reviews": 48, "longest": 60, "batches": [8, 16], "steps": 2,
              "hidden": 8, "embedding": 8, "vocab": 100},
}
PRECISIONS = {"fp32": None, "bf16-mixed": torch.bfloat16}


def model_params(size: dict[str, Any]) -> ModelParams:
    return classifier_params(size["embedding"], size["hidden"])


def bucketed_batches(size: dict[str, Any], batch_size: int, device: torch.device
                     ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Length-bucketed batches of synthetic IMDB-length reviews, on `device` (lengths stay
    on the CPU, as collate leaves them)."""
    gen = torch.Generator().manual_seed(0)
    lengths = imdb_lengths(size["reviews"], gen, size["longest"])
    batches = []
    for idx in BucketBatchSampler(lengths, batch_size, pool=50, seed=0):
        ids, n, labels = synthetic_batch(lengths[idx], size["vocab"], gen)
        batches.append((ids.to(device), n, labels.to(device)))
    return batches[: size["steps"] + 1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def tokens_per_s(fn, batches: list, device: torch.device) -> float:
    """Real tokens/s of `fn(batch)` over the batches after the first (the warm-up)."""
    real = sum(int(b[1].sum()) for b in batches[1:])
    seconds = seconds_per_call(lambda: [fn(b) for b in batches[1:]], repeats=1,
                               warmup=0, sync=lambda: sync(device))
    return real / seconds


def bare_rates(cell: str, path: str, batches: list, size: dict[str, Any],
               autocast: torch.dtype | None, device: torch.device) -> dict[str, float]:
    if path == "packed":  # 5-100x slower on cuDNN: a few steps tell
        batches = batches[:3]
    torch.manual_seed(0)
    module = CellClassifier(
        build_network("classification", cell, size["vocab"], 2, model_params(size)), train_params())
    net = with_encoder(module.net.to(device), path).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    bare_step(net, opt, batches[0], autocast=autocast)  # warm-up: kernels, allocator
    train = tokens_per_s(lambda b: bare_step(net, opt, b, autocast=autocast), batches, device)
    net.eval()

    @torch.inference_mode()
    def infer(b: tuple) -> None:
        with torch.autocast(device.type, dtype=autocast or torch.float32,
                            enabled=autocast is not None):
            net(b[0], b[1])

    infer(batches[0])
    return {"train_tokens_per_s": round(train),
            "inference_tokens_per_s": round(tokens_per_s(infer, batches, device))}


def train_params(precision: str = "32-true", accelerator: str = "cpu") -> TrainParams:
    return TrainParams(optimizer="adam", lr=1e-3, weight_decay=0.0, batch_size=64,
                       max_epochs=1, patience=1, stop_at=None, grad_clip=1.0, bucket_pool=50,
                       bptt=35,
                       accelerator=accelerator, precision=precision,
                       limit_train_batches=None, threads=1, devices=1, strategy="auto",
                       num_nodes=1)


class TokenTimer(pl.Callback):
    """Wall time of the training steps after the first, inside Lightning's loop."""

    def __init__(self, device: torch.device):
        self.device, self.start, self.elapsed = device, 0.0, 0.0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        sync(self.device)
        if batch_idx == 0:
            self.start = time.perf_counter()
        self.elapsed = time.perf_counter() - self.start


def lightning_rate(cell: str, batches: list, size: dict[str, Any], precision: str,
                   device: torch.device) -> float:
    """Real training tokens/s of rnnbench's own Trainer (as `train` builds it) on the batches."""
    torch.manual_seed(0)
    train = train_params(precision, "gpu" if device.type == "cuda" else "cpu")
    cp = CellParams(cell=cell, seed=0, model=model_params(size), train=train)
    module = CellClassifier(build_network("classification", cell, size["vocab"], 2, cp.model),
                            train)
    timer = TokenTimer(device)
    trainer = build_trainer(cp, [timer], Path("/tmp/rnnbench-bench"))
    trainer.limit_val_batches, trainer.num_sanity_val_steps = 0, 0
    data = [Batch(ids.cpu(), n, labels.cpu()) for ids, n, labels in batches]
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False)
    trainer.fit(module, train_dataloaders=loader)
    return sum(int(b[1].sum()) for b in batches[1:]) / timer.elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="toy sizes on the CPU (tests)")
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    ap.add_argument("--paths", nargs="+", default=["exact", "padded", "packed"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()

    size = SIZES["small" if args.small else "full"]
    device = torch.device("cuda" if torch.cuda.is_available() and not args.small else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.machine()
    results: dict[str, Any] = {"device": name, "torch": torch.__version__,
                               "cudnn": torch.backends.cudnn.version() if device.type == "cuda"
                               else None, "sizes": size, "cells": {}}
    for cell in args.cells:
        per_cell: dict[str, Any] = {}
        precisions = dict(PRECISIONS)
        if device.type == "cpu" and (refusal := cpu_bf16_refusal(cell)):
            # a CPU without bf16 instructions: said in the results, never a failure
            del precisions["bf16-mixed"]
            per_cell["skipped"] = {"bf16-mixed": f"this CPU cannot run it: {refusal}"}
        for batch_size in size["batches"]:
            batches = bucketed_batches(size, batch_size, device)
            for precision, autocast in precisions.items():
                if autocast is not None and device.type == "cpu" and not args.small:
                    continue
                for path in args.paths:
                    key = f"batch{batch_size}/{precision}/{path}"
                    per_cell[key] = bare_rates(cell, path, batches, size, autocast, device)
                    print(cell, key, per_cell[key], flush=True)
        # rnnbench's loop against the bare one: the exact path, the middle batch size
        batch_size = size["batches"][len(size["batches"]) // 2]
        batches = bucketed_batches(size, batch_size, device)
        for precision in precisions:
            lightning = precision if precision != "fp32" else "32-true"
            rate = round(lightning_rate(cell, batches, size, lightning, device))
            bare = per_cell[f"batch{batch_size}/{precision}/exact"]["train_tokens_per_s"]
            # the ratio of the two figures recorded (rounded alike), so it can be checked
            per_cell[f"loop/batch{batch_size}/{precision}"] = {
                "rnnbench_train_tokens_per_s": rate,
                "bare_train_tokens_per_s": bare, "rnnbench_over_bare": round(rate / bare, 3)}
        results["cells"][cell] = per_cell
    suffix = "small" if args.small else name.replace(" ", "_")
    save_results(args.out, f"gpu_{suffix}", results)


if __name__ == "__main__":
    main()
