"""rnnbench's language-model training side by side with PyTorch's own `word_language_model`
example (pytorch/examples, `main.py`), the peer a user would otherwise run: the same Brown
tokens and vocabulary (the default task's prepared splits, written out as its text files),
the same settings (cell, layers, width, tied embeddings, bptt, batch, dropout, AdamW with its
learning rate and weight decay, gradient clipping, epochs), one CPU thread each.

Each side trains every seed; the figures are each epoch's seconds (training and validation,
as main.py times them) and the best validation perplexity. The example validates on 10 rows,
each read from its own start, and drops the tokens that do not fill them; rnnbench reads the
validation text as one row: so rnnbench's best weights are also scored the example's way, and
that perplexity is the one compared.

    python -m benchmarks.word_language_model --examples DIR [--data PROJECT] [--cell lstm]
        [--seeds 1 2 3] [--epochs 6]

DIR: a checkout of pytorch/examples (its word_language_model/ folder runs as it is). PROJECT:
a project whose `dvc repro prepare@lm` ran (default: this one). Writes
benchmarks/results/word_language_model_<machine>.json. Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from pipeline.config import CellParams, load_params
from pipeline.data.corpus import Stream, load_stream
from pipeline.data.text import Vocab
from pipeline.evaluation.language_model import stream_loss
from pipeline.machine import cpu_name
from pipeline.paths import VOCAB_FILE, Layout
from pipeline.training.callbacks import EpochHistory
from pipeline.training.fit import build_trainer
from pipeline.training.inputs import FitInputs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / f"word_language_model_{platform.machine()}.json"
EXAMPLE_CELLS = {"rnn": "RNN_TANH", "lstm": "LSTM", "gru": "GRU"}
EXAMPLE_EVAL_ROWS = 10  # main.py's eval_batch_size
EPOCH_LINE = re.compile(r"end of epoch\s+\d+ \| time:\s*([\d.]+)s \| valid loss\s+[\d.]+ \| "
                        r"valid ppl\s+([\d.]+)")


def write_corpus(layout: Layout, folder: Path) -> None:
    """The prepared splits as main.py reads text: a sentence per line (it adds <eos>), rare
    words already `<unk>`, so that its dictionary is rnnbench's vocabulary."""
    vocab = Vocab.load(layout.prepared / VOCAB_FILE)
    for split, name in (("train", "train"), ("val", "valid"), ("test", "test")):
        stream = load_stream(layout.split(split))
        (folder / f"{name}.txt").write_text(
            "".join(" ".join(vocab.decode(s)) + "\n" for s in stream.sentences()),
            encoding="utf-8")


def settings(cp: CellParams, epochs: int) -> CellParams:
    """The task's settings as both sides run them: AdamW (main.py's --use-optimizer, its
    default weight decay 0.01), no early stopping."""
    train = cp.train.model_copy(update={"optimizer": "adamw", "weight_decay": 0.01,
                                        "max_epochs": epochs, "patience": epochs})
    return cp.model_copy(update={"train": train})


def run_example(examples: Path, corpus: Path, cp: CellParams, seed: int) -> dict[str, Any]:
    m, t = cp.model, cp.train
    cmd = [sys.executable, "main.py", "--data", str(corpus), "--model", EXAMPLE_CELLS[cp.cell],
           "--emsize", str(m.embedding_dim), "--nhid", str(m.hidden_size),
           "--nlayers", str(m.num_layers), "--dropout", str(m.dropout), "--lr", str(t.lr),
           "--clip", str(t.grad_clip), "--epochs", str(t.max_epochs),
           "--batch_size", str(t.batch_size), "--bptt", str(t.bptt), "--seed", str(seed),
           "--use-optimizer", "--save", str(corpus / f"model-{seed}.pt"),
           *(["--tied"] if m.tie_embeddings else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(t.threads), "MKL_NUM_THREADS": str(t.threads)}
    done = subprocess.run(cmd, cwd=examples / "word_language_model", env=env,
                          capture_output=True, text=True, check=True)
    epochs = [(float(s), float(ppl)) for s, ppl in EPOCH_LINE.findall(done.stdout)]
    return {"epoch_seconds": [s for s, _ in epochs], "val_perplexity": [p for _, p in epochs],
            "best_val_perplexity": min(p for _, p in epochs)}


def run_rnnbench(layout: Layout, cp: CellParams, seed: int) -> dict[str, Any]:
    cp = cp.model_copy(update={"seed": seed})
    pl.seed_everything(seed, workers=True, verbose=False)
    torch.set_num_threads(cp.train.threads)
    inputs = FitInputs.read(layout)
    module = inputs.module(cp)
    history = EpochHistory()
    with tempfile.TemporaryDirectory(prefix="rnnbench-wlm-") as scratch:
        best = pl.callbacks.ModelCheckpoint(dirpath=scratch, monitor=module.monitor,
                                            mode=module.mode, filename="best")
        build_trainer(cp, [history, best], Path(scratch)).fit(
            module, datamodule=inputs.data(cp, 256, splits=("train", "val")))
        state = torch.load(best.best_model_path, weights_only=True)["state_dict"]
    module.load_state_dict(state)
    val: Stream = load_stream(layout.split("val"))
    rows = [row["seconds"] for row in history.rows]
    return {"epoch_seconds": [round(b - a, 2) for a, b in zip([0.0, *rows], rows, strict=False)],
            "val_perplexity": [round(row["val_ppl"], 2) for row in history.rows],
            "best_val_perplexity": round(min(row["val_ppl"] for row in history.rows), 2),
            "best_val_perplexity_example_way": round(stream_loss(
                module.net, val, EXAMPLE_EVAL_ROWS, cp.train.bptt).perplexity, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT)
    parser.add_argument("--task", default="lm")
    parser.add_argument("--cell", default="lstm", choices=sorted(EXAMPLE_CELLS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    params = load_params(args.data / "params.yaml").for_task(args.task)
    layout = Layout(args.data, args.task)
    cp = settings(params.for_cell(args.cell), args.epochs)
    out: dict[str, Any] = {"machine": platform.machine(), "cpu": cpu_name(),
                           "date": time.strftime("%Y-%m-%d"), "task": args.task,
                           "cell": args.cell, "settings": cp.model_dump(mode="json"),
                           "example": {}, "rnnbench": {}}
    with tempfile.TemporaryDirectory(prefix="rnnbench-wlm-corpus-") as corpus:
        write_corpus(layout, Path(corpus))
        for seed in args.seeds:  # alternating, so that drift in the machine hits both alike
            out["example"][str(seed)] = run_example(args.examples, Path(corpus), cp, seed)
            out["rnnbench"][str(seed)] = run_rnnbench(layout, cp, seed)
            print(seed, out["example"][str(seed)], out["rnnbench"][str(seed)], flush=True)
    for side in ("example", "rnnbench"):
        runs = out[side].values()
        out[f"{side}_median_epoch_seconds"] = statistics.median(
            s for r in runs for s in r["epoch_seconds"])
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {OUT}")


if __name__ == "__main__":
    main()
