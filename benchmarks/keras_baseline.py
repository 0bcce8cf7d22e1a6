"""The peer's speed on document-length text: a masked bidirectional Keras LSTM training on the
batches of `benchmarks.long_text`, so that rnnbench's exact encoder is compared with it in the
same session instead of against a figure from another day.

Keras is not one of rnnbench's dependencies: run this with an interpreter that has TensorFlow
(e.g. `python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu==2.21.0`), from the
project root, right before or after `python -m benchmarks.long_text`:

    /tmp/tf/bin/python -m benchmarks.keras_baseline [--lengths 700 200] [--out DIR]

The network matches long_text's: 20,000 x 128 embeddings (id 0 = padding, masked), a
bidirectional 128-unit LSTM whose outputs are mean-pooled over the real positions, a linear
head, Adam with gradient clipping at norm 1; one step = `train_on_batch` (forward, backward,
update) on 64 rows of lengths drawn uniformly from T/2..T. Keras skips masked steps exactly
(its state stays, its outputs are ignored), as packing does.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import save_results

VOCAB, EMBEDDING, HIDDEN, BATCH = 20_000, 128, 128, 64


def batch_of(longest: int, lengths: list[int] | None = None, seed: int = 1
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids [B, T] (0 after each row's length), lengths [B], binary labels [B]; the lengths
    given, or drawn uniformly from longest/2..longest."""
    rng = np.random.default_rng(seed)
    lengths = np.array(lengths) if lengths else rng.integers(longest // 2, longest + 1, BATCH)
    ids = rng.integers(1, VOCAB, (BATCH, int(lengths.max())))
    ids[np.arange(ids.shape[1])[None, :] >= lengths[:, None]] = 0
    return ids.astype("int32"), lengths, rng.integers(0, 2, BATCH).astype("int32")


def network() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, EMBEDDING, mask_zero=True)(ids)
    x = keras.layers.Bidirectional(keras.layers.LSTM(HIDDEN, return_sequences=True))(x)
    x = keras.layers.GlobalAveragePooling1D()(x)  # masked: the mean over real positions
    model = keras.Model(ids, keras.layers.Dense(2)(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def measure(longest: int, repeats: int, lengths: list[int] | None = None) -> dict[str, Any]:
    ids, lengths, labels = batch_of(longest, lengths)
    model = network()
    for _ in range(2):  # graph tracing and the first allocations
        model.train_on_batch(ids, labels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_on_batch(ids, labels)
        times.append(time.perf_counter() - start)
    best, median = min(times), sorted(times)[len(times) // 2]
    real = int(lengths.sum())
    print(f"keras lstm T={longest} best {best:.3f} s/step, median {median:.3f}", flush=True)
    return {"real_tokens": real, "padded_tokens": int(ids.size),
            "s_per_step_best": round(best, 4), "s_per_step_median": round(median, 4),
            "real_tokens_per_s": round(real / best), "runs": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[700, 200])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--row-lengths", type=lambda v: [int(n) for n in v.split(",")],
                    help="comma-separated lengths of the batch's rows (one --lengths value): "
                         "the batch of the run that compares against this one")
    args = ap.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    import keras
    import tensorflow as tf

    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                    "cpus": os.cpu_count()},
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "batch": BATCH, "embedding": EMBEDDING, "hidden": HIDDEN, "bidirectional": True,
        "lstm": {str(t): measure(t, args.repeats, args.row_lengths) for t in args.lengths},
    }
    save_results(args.out, f"keras_baseline_{platform.machine()}", results)


if __name__ == "__main__":
    main()
