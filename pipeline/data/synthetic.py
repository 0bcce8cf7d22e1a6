"""Synthetic long-range tasks, generated (no download), where the distance a cell must carry
information is a parameter:

- recall: a sequence of L symbols (8 kinds); the label is the first one. The whole sequence
  lies between the evidence and the answer, read at the last step.
- adding: L digits, two of them marked; the label is their sum (0-18). One mark falls in the
  first tenth of the sequence, the other in its second half (Hochreiter & Schmidhuber, 1997,
  with digits for real numbers so that it is a classification).

Both are read left to right by a unidirectional cell that answers at the last step
(`longrange.model` in params.yaml), so the dependency spans about L steps.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import torch

from pipeline.config import Family, Params
from pipeline.data.records import DataStats, Generator, SplitStats, write_stats
from pipeline.data.splits import split_stats
from pipeline.data.text import PAD, UNK, Vocab, encode_split
from pipeline.files import atomic_dir, write_json
from pipeline.paths import SPLITS, Layout

PROBLEMS = ("recall", "adding")
SYMBOLS = [chr(ord("a") + i) for i in range(8)]  # recall's alphabet
DIGITS = [str(d) for d in range(10)]
MARKED = [f"[{d}]" for d in DIGITS]  # adding: a marked digit is a token of its own
FIRST = len([PAD, UNK])  # the first id after <pad> and <unk>


def task_name(problem: str, length: int) -> str:
    """The folder and MLflow name of one generated task, e.g. recall_100."""
    return f"{problem}_{length}"


def generate(problem: str, length: int, n: int, seed: int
             ) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """n sequences of `length` token ids [n, L], their labels [n], the vocabulary and the
    label names. The same arguments give the same data on every machine."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}: expected one of {', '.join(PROBLEMS)}")
    if length < 2:
        raise ValueError(f"length {length}: a long-range task needs at least 2 steps")
    # Each (problem, length) draws its own stream: a new length is new data, not a prefix.
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(f"{problem}-{length}".encode()))
    if problem == "recall":
        symbols = torch.randint(0, len(SYMBOLS), (n, length), generator=g)
        return symbols + FIRST, symbols[:, 0], [PAD, UNK, *SYMBOLS], SYMBOLS
    digits = torch.randint(0, 10, (n, length), generator=g)
    first = torch.randint(0, max(length // 10, 1), (n,), generator=g)
    second = torch.randint(length // 2, length, (n,), generator=g)
    rows = torch.arange(n)
    ids = digits + FIRST
    ids[rows, first] += len(DIGITS)  # a marked digit d is MARKED[d]
    ids[rows, second] += len(DIGITS)
    labels = digits[rows, first] + digits[rows, second]
    return ids, labels, [PAD, UNK, *DIGITS, *MARKED], [str(s) for s in range(19)]


def write_task(problem: str, length: int, n: int, seed: int, layout: Layout,
               val_fraction: float = 0.1, test_fraction: float = 0.1) -> Path:
    """Generate one task and write it as prepare would: encoded splits, vocab, labels, stats."""
    ids, labels, vocab, names = generate(problem, length, n, seed)
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    cuts = {"train": (0, n - n_val - n_test), "val": (n - n_val - n_test, n - n_test),
            "test": (n - n_test, n)}
    splits: dict[str, SplitStats] = {}
    with atomic_dir(layout.prepared) as out:
        for split in SPLITS:
            a, b = cuts[split]
            rows, ys = ids[a:b].tolist(), labels[a:b].tolist()
            torch.save(encode_split(rows, ys), out / f"{split}.pt")
            splits[split] = split_stats(rows, [[y] for y in ys], names, b - a)
        Vocab(vocab).save(out / "vocab.json")
        write_json(out / "labels.json", names)
        write_stats(out, DataStats(family=Family.CLASSIFICATION, examples=n, vocab_size=len(vocab),
                                   labels=names, generator=Generator(problem=problem,
                                                                     length=length, seed=seed),
                                   splits=splits))
    print(f"{task_name(problem, length)}: {n} generated sequences of {length} tokens -> "
          f"{layout.prepared}", file=sys.stderr)
    return layout.prepared


def generate_task(params: Params, problem: str, length: int, root: Path) -> Path:
    """Stage generate@<problem>-<length>: data/<problem>_<length>/prepared."""
    lr = params.longrange
    return write_task(problem, length, lr.examples, lr.data_seed,
                      Layout(root, params.for_longrange(problem, length).name))
