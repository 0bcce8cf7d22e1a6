"""Encoded splits as datasets, and length-bucketed batches (plain PyTorch: evaluation and
reports load them without Lightning)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset, Sampler

from pipeline.config import Family
from pipeline.data.text import PAD_ID, UNK_ID
from pipeline.errors import fail

IGNORE = -100  # target of padded positions: cross_entropy and the metrics skip it

Target = int | torch.Tensor


class Batch(NamedTuple):
    ids: torch.Tensor  # [B, T] word ids, PAD_ID after each sequence's end
    lengths: torch.Tensor  # [B] int64 on the CPU (pack_padded_sequence needs that)
    targets: torch.Tensor  # labels [B], or tags [B, T] with IGNORE on padding
    chars: torch.Tensor | None = None  # [B, T, L] character ids of each word (tagging)


def char_table(chars: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Flat character ids with per-token offsets -> [tokens, longest word], 0-padded."""
    lengths = offsets[1:] - offsets[:-1]
    longest = int(lengths.max()) if len(lengths) else 1
    table = torch.zeros(len(lengths), max(longest, 1), dtype=torch.int32)
    rows = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    cols = torch.arange(len(chars)) - torch.repeat_interleave(offsets[:-1], lengths)
    table[rows, cols] = chars.int()
    return table


class EncodedSplit(Dataset):
    """One split written by prepare: flat ids with offsets, per-sequence labels or per-token
    tags (flat like the ids), and for tagging each token's characters."""

    def __init__(self, path: Path | dict[str, torch.Tensor]):
        """`path`: a split file; or the `encode_split` blob itself (texts to predict)."""
        try:
            blob = path if isinstance(path, dict) else torch.load(path, weights_only=True)
            self.ids, self.offsets = blob["ids"].long(), blob["offsets"]
            self.labels, self.tags = blob.get("labels"), blob.get("tags")
            self.chars = (char_table(blob["chars"], blob["char_offsets"])
                          if "chars" in blob else None)
        except (OSError, RuntimeError, KeyError, TypeError, AttributeError) as err:
            fail(f"{path}: not an encoded split ({err}); run the prepare stage")
        if (self.labels is None) == (self.tags is None):
            fail(f"{path}: expected either labels or tags; run the prepare stage again")
        self.family = Family.CLASSIFICATION if self.tags is None else Family.TAGGING
        self.lengths = (self.offsets[1:] - self.offsets[:-1]).clamp(min=1)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target] | tuple[
            torch.Tensor, Target, torch.Tensor]:
        a, b = self.offsets[i], self.offsets[i + 1]
        ids = self.ids[a:b]
        if self.tags is not None:
            if self.chars is not None:
                return ids, self.tags[a:b], self.chars[a:b]
            return ids, self.tags[a:b]
        if len(ids) == 0:  # an empty text still needs one step to run the RNN over
            ids = torch.tensor([UNK_ID])
        return ids, int(self.labels[i])

    def targets(self) -> list:
        """Gold labels, or gold tag lists, in example order."""
        if self.tags is None:
            return self.labels.tolist()
        return [self.tags[a:b].tolist() for a, b in zip(self.offsets[:-1], self.offsets[1:],
                                                         strict=True)]


def collate(items: list[tuple]) -> Batch:
    seqs = [item[0] for item in items]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    ids = pad_sequence(seqs, batch_first=True, padding_value=PAD_ID)
    if isinstance(items[0][1], torch.Tensor):
        targets = pad_sequence([item[1] for item in items], batch_first=True,
                               padding_value=IGNORE)
    else:
        targets = torch.tensor([item[1] for item in items], dtype=torch.int64)
    chars = None
    if len(items[0]) == 3:  # [T_i, L_i] per sequence -> [B, T, L], cut to the longest word
        words = [item[2] for item in items]
        chars = torch.zeros(len(words), ids.size(1), max(w.size(1) for w in words),
                            dtype=words[0].dtype)
        for row, w in enumerate(words):
            chars[row, : w.size(0), : w.size(1)] = w
        chars = chars[..., : max(int((chars != 0).sum(-1).max()), 1)]
    return Batch(ids, lengths, targets, chars)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length examples, so little compute goes to padding.

    Shuffle, cut into pools of `pool` batches, sort each pool by length, slice into
    batches, shuffle the batches. Seeded per epoch, so runs are reproducible.
    """

    def __init__(self, lengths: torch.Tensor | list[int], batch_size: int, pool: int = 50,
                 shuffle: bool = True, seed: int = 0, rank: int = 0, world: int = 1):
        self.lengths = [int(n) for n in lengths]
        self.batch_size, self.pool, self.shuffle, self.seed = batch_size, pool, shuffle, seed
        # One fit over `world` processes (DDP): every process draws the same batches and
        # keeps every world-th, as many each (the last few dropped), so that all step alike.
        self.rank, self.world = rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        # One stream per (seed, epoch): seeded with seed + epoch, seed 1's second epoch
        # replayed seed 2's first, and seeds shared batch orders. A string seed is hashed
        # (sha512), the same in every process.
        rng = random.Random(f"batches/{self.seed}/{self.epoch}")
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
            self.epoch += 1  # a fresh order next epoch even if nobody calls set_epoch
        span = self.batch_size * self.pool if self.shuffle else len(order)
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=self.lengths.__getitem__)
            # longest first within a batch: the order the recurrent encoder reads rows in
            batches += [chunk[i : i + self.batch_size][::-1]
                        for i in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        if self.world > 1:
            batches = batches[self.rank : len(batches) // self.world * self.world : self.world]
        return iter(batches)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) // self.world


def padding_fraction(lengths: list[int], batches: list[list[int]]) -> float:
    """Share of the padded [B, T] cells that hold padding."""
    real = sum(lengths[i] for b in batches for i in b)
    total = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - real / total
