"""The LightningDataModules: a task's prepared splits in length-bucketed batches, and a
language model's running text in rows read window by window, in order."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.data.corpus import load_stream
from pipeline.data.loading import BucketBatchSampler, EncodedSplit, collate
from pipeline.data.windows import EVAL_ROWS, EVAL_WINDOW, Rows, rows
from pipeline.paths import Layout


class TextDataModule(pl.LightningDataModule):
    def __init__(self, layout: Layout, batch_size: int, eval_batch_size: int = 256,
                 pool: int = 50, seed: int = 0,
                 splits: tuple[str, ...] = ("train", "val", "test")):
        super().__init__()
        self.layout, self.batch_size, self.eval_batch_size = layout, batch_size, eval_batch_size
        self.pool, self.seed = pool, seed
        self.names = splits  # tuning reads train and val only: the test split stays unseen
        self.first_epoch = 0  # a resumed fit starts later in the sampler's sequence of orders
        self.splits: dict[str, EncodedSplit] = {}

    def setup(self, stage: str | None = None) -> None:
        for name in self.names:
            if name not in self.splits:
                self.splits[name] = EncodedSplit(self.layout.split(name))

    def _loader(self, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        split = self.splits[name]
        # Training batches are shared out over a DDP fit's processes; every process validates
        # and tests on the whole split (the same weights give the same scores everywhere, so
        # early stopping agrees without gathering metrics).
        trainer = self.trainer if shuffle else None
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = BucketBatchSampler(split.lengths, batch_size, self.pool, shuffle, self.seed,
                                     rank, world)
        # Batches are tiny and already in memory: worker processes would cost more than they save.
        return DataLoader(split, batch_sampler=sampler, collate_fn=collate, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        loader = self._loader("train", self.batch_size, shuffle=True)
        loader.batch_sampler.set_epoch(self.first_epoch)  # type: ignore[union-attr]
        return loader

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


Window = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, targets, positions


class Windows(Dataset):
    """The windows of one split's rows, in reading order."""

    def __init__(self, laid_out: Rows, bptt: int):
        self.windows = list(laid_out.windows(bptt))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, k: int) -> Window:
        return self.windows[k]


class TextStreamDataModule(pl.LightningDataModule):
    """Training text in `batch_size` rows; validation and test in EVAL_ROWS rows, so that
    every target is predicted from all the text before it in its split."""

    def __init__(self, layout: Layout, batch_size: int, bptt: int,
                 splits: tuple[str, ...] = ("train", "val", "test")):
        super().__init__()
        self.layout, self.batch_size, self.bptt, self.names = layout, batch_size, bptt, splits
        self.first_epoch = 0  # a resumed fit's place (every epoch reads the same order here)
        self.windows: dict[str, Windows] = {}

    def setup(self, stage: str | None = None) -> None:
        for name in self.names:
            if name not in self.windows:
                ids = load_stream(self.layout.split(name)).ids
                train = name == "train"
                laid = rows(ids, self.batch_size if train else EVAL_ROWS)
                self.windows[name] = Windows(laid, self.bptt if train else EVAL_WINDOW)

    def _loader(self, name: str) -> DataLoader:
        # One window per step, in order: shuffling would break the carried state.
        return DataLoader(self.windows[name], batch_size=None, shuffle=False, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
