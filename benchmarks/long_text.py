"""Document-length text: seconds per training step of rnnbench's exact encoder against PyTorch's
packed and plain padded paths, with deterministic algorithms off and on, and each cell's FLOP
rate against this machine's own matrix-multiply rate at the same shapes.

The batches are the ones of the issue that asked for this: 64 sequences of lengths drawn
uniformly from T/2..T (T = 700 and 200), random word ids, a bidirectional 128-unit cell over
128-d embeddings, mean pooling, a linear head, Adam; one step = forward, backward, clipping and
the optimizer update, on the same weights for every path. Outputs of the three paths are
compared on the first batch (the exact path must equal packing; padding does not).

With `--keras PYTHON` (an interpreter that has TensorFlow; see benchmarks/keras_baseline.py),
the peer's masked bidirectional Keras LSTM is timed on batches of the same shape, one process
between each round of the LSTM's timed steps, so the two share the machine's drift.

    python -m benchmarks.long_text [--lengths 700 200] [--cells rnn lstm gru] [--out DIR]
                                   [--keras /tmp/tf/bin/python]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks import save_results
from benchmarks.baselines import (
    bare_step,
    classifier_params,
    matmul_rate,
    seconds_per_call,
    synthetic_batch,
    training_flops,
    uniform_lengths,
    with_encoder,
)
from pipeline.model.encoder import segment_plan
from pipeline.model.networks import SentenceClassifier

VOCAB, EMBEDDING, HIDDEN, BATCH = 20_000, 128, 128, 64
PATHS = ("exact", "padded", "packed")


def network(cell: str) -> SentenceClassifier:
    torch.manual_seed(0)
    return SentenceClassifier(cell, VOCAB, 2, classifier_params(EMBEDDING, HIDDEN)).train()


def max_difference(net: torch.nn.Module, path: str, batch: tuple) -> float:
    """Largest |logit difference| between the exact path and `path` on one batch."""
    ids, lengths, _ = batch
    with torch.no_grad():
        return float((net(ids, lengths) - with_encoder(net, path)(ids, lengths)).abs().max())


def timed_step(net: torch.nn.Module, opt: torch.optim.Optimizer, batch: tuple,
               deterministic: bool) -> float:
    """Seconds of one training step; deterministic mode as rnnbench trains (no NaN fill)."""
    torch.use_deterministic_algorithms(deterministic)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        return seconds_per_call(lambda: bare_step(net, opt, batch), repeats=1, warmup=0)
    finally:
        torch.use_deterministic_algorithms(False)


def keras_round(python: str, lengths: list[int]) -> dict[str, Any]:
    """One process of benchmarks.keras_baseline on rows of these lengths (3 timed steps after
    warm-up)."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([python, "-m", "benchmarks.keras_baseline", "--lengths", str(max(lengths)),
                        "--row-lengths", ",".join(map(str, lengths)), "--repeats", "3",
                        "--out", out], check=True, capture_output=True)
        (path,) = Path(out).glob("*.json")
        return json.loads(path.read_text())


def measure(cell: str, longest: int, paths: tuple[str, ...], repeats: int,
            slow_repeats: int, keras: str | None = None) -> dict[str, Any]:
    """One cell at one length: every path, deterministic off and on, the timed steps of all
    paths interleaved so that the machine's drift hits them alike; best and median kept."""
    batch = synthetic_batch(uniform_lengths(BATCH, longest, torch.Generator().manual_seed(1)),
                            VOCAB, torch.Generator().manual_seed(2))
    lengths = batch[1]
    real, padded = int(lengths.sum()), BATCH * int(lengths.max())
    plan = segment_plan(sorted(lengths.tolist(), reverse=True))
    out: dict[str, Any] = {
        "real_tokens": real, "padded_tokens": padded,
        "segments": len(plan), "computed_tokens": sum((e - s) * r for s, e, r in plan)}
    base = network(cell)
    runs: dict[tuple[str, bool], list[float]] = {}
    rounds: list[dict[str, Any]] = []
    models = {}
    for path in paths:
        net = with_encoder(network(cell), path)
        models[path] = (net, torch.optim.Adam(net.parameters(), lr=1e-3, fused=True))
        bare_step(*models[path], batch)  # warm-up
        if path != "exact":
            out[path] = {"max_abs_diff_vs_exact": max_difference(base, path, batch)}
    for r in range(repeats):
        for path in paths:
            if path == "packed" and r >= slow_repeats:
                continue
            for deterministic in (False, True):
                runs.setdefault((path, deterministic), []).append(
                    timed_step(*models[path], batch, deterministic))
        if keras:
            rounds.append(keras_round(keras, lengths.tolist()))
    for (path, deterministic), times in runs.items():
        best, median = min(times), sorted(times)[len(times) // 2]
        out.setdefault(path, {})["deterministic" if deterministic else "default"] = {
            "s_per_step_best": round(best, 4), "s_per_step_median": round(median, 4),
            "real_tokens_per_s": round(real / best), "runs": len(times)}
        print(f"{cell} T={longest} {path:7s} deterministic={deterministic!s:5s} "
              f"best {best:.3f} s/step, median {median:.3f}", flush=True)
    seconds = out["exact"]["default"]["s_per_step_best"]
    flops = training_flops(cell, EMBEDDING, HIDDEN, 2, real)
    out["exact"]["gflop_per_s"] = round(flops / seconds / 1e9, 2)
    out["exact_over_padded"] = round(seconds / out["padded"]["default"]["s_per_step_best"], 3)
    if rounds:
        times = sorted(r["lstm"][str(int(lengths.max()))]["s_per_step_best"] for r in rounds)
        out["keras"] = {
            "tensorflow": rounds[0]["tensorflow"], "keras": rounds[0]["keras"],
            "s_per_step_best": times[0], "s_per_step_median": times[len(times) // 2],
            "real_tokens_per_s": round(real / times[0]), "rounds": len(times)}
        out["exact_over_keras"] = round(seconds / times[0], 3)
        print(f"{cell} T={longest} keras   best {times[0]:.3f} s/step (rnnbench exact: "
              f"{out['exact_over_keras']}x Keras's time)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[700, 200])
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--slow-repeats", type=int, default=1, help="timed steps of the packed path")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--keras", metavar="PYTHON", help="an interpreter with TensorFlow: time "
                    "the masked Keras BiLSTM between the LSTM's rounds")
    args = ap.parse_args()

    device = torch.device("cpu")
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "batch": BATCH, "embedding": EMBEDDING, "hidden": HIDDEN, "bidirectional": True,
        "matmul_gflop_per_s": {
            # one recurrent step: [B, H] @ [H, gates*H] (LSTM: 4 gates)
            "recurrent_step_64x128x512": round(matmul_rate(BATCH, HIDDEN, 4 * HIDDEN,
                                                           device) / 1e9, 2),
            # the input projection of a whole 700-step batch at once
            "input_projection_44800x128x512": round(matmul_rate(BATCH * 700, EMBEDDING,
                                                                4 * HIDDEN, device) / 1e9, 2),
        },
        "cells": {},
    }
    peak = results["matmul_gflop_per_s"]["recurrent_step_64x128x512"]
    for cell in args.cells:
        results["cells"][cell] = {}
        for longest in args.lengths:
            paths = PATHS if cell == "lstm" else ("exact", "padded")  # packed: the LSTM's table
            row = measure(cell, longest, paths, args.repeats, args.slow_repeats,
                          args.keras if cell == "lstm" else None)
            row["exact"]["of_matmul_rate"] = round(row["exact"]["gflop_per_s"] / peak, 3)
            results["cells"][cell][str(longest)] = row
    save_results(args.out, f"long_text_{platform.machine()}", results)


if __name__ == "__main__":
    main()
