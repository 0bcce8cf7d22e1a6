"""What a fit reads from a task's prepared data, and the network, LightningModule and batches
it builds from that for one cell's settings: shared by the train stage's fit and every tuning
trial, which differ only in the settings."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.config import CellParams, Family
from pipeline.data.datamodule import TextDataModule, TextStreamDataModule
from pipeline.data.records import read_stats
from pipeline.errors import fail
from pipeline.files import read_json, tree_digest
from pipeline.model.lightning_module import CellClassifier, LanguageModelModule
from pipeline.model.networks import build_network, equal_params_width
from pipeline.paths import CHARS_FILE, VOCAB_FILE, Layout


@dataclass(frozen=True)
class FitInputs:
    layout: Layout
    family: Family
    vocab_size: int
    labels: list[str]
    num_chars: int  # the char CNN's alphabet (0: none)
    data_hash: str  # of the prepared tensors
    vectors: dict[str, torch.Tensor] | None  # pretrained word vectors, if prepared

    @classmethod
    def read(cls, layout: Layout) -> FitInputs:
        family = read_stats(layout.require_prepared()).family
        chars_file = layout.prepared / CHARS_FILE
        vectors_file = layout.prepared / "vectors.pt"
        return cls(layout, family, len(read_json(layout.prepared / VOCAB_FILE)),
                   read_json(layout.prepared / "labels.json"),
                   len(read_json(chars_file)) if chars_file.exists() else 0,
                   tree_digest(layout.prepared),
                   torch.load(vectors_file, weights_only=True) if vectors_file.exists() else None)

    def sized(self, cp: CellParams) -> CellParams:
        """`cp` at the width it is built with: under equal_params, as wide as gives an LSTM's
        parameter count (a search that builds networks: it draws from the random stream)."""
        if cp.model.sizing != "equal_params":
            return cp
        width = equal_params_width(self.family, cp.cell, self.vocab_size, len(self.labels),
                                   cp.model, self.num_chars)
        return cp.model_copy(update={"model": cp.model.model_copy(update={"hidden_size": width})})

    def data(self, cp: CellParams, eval_batch_size: int,
             splits: tuple[str, ...] = ("train", "val", "test")
             ) -> TextDataModule | TextStreamDataModule:
        if self.family == Family.LANGUAGE_MODEL:
            if cp.train.devices > 1 or cp.train.num_nodes > 1:
                fail(f"train.devices: {cp.train.devices}, train.num_nodes: "
                     f"{cp.train.num_nodes}: a language model trains in one process (its "
                     "rows of running text are read in order); set both to 1")
            return TextStreamDataModule(self.layout, cp.train.batch_size, cp.train.bptt, splits)
        return TextDataModule(self.layout, cp.train.batch_size, eval_batch_size,
                              cp.train.bucket_pool, cp.seed, splits)

    def module(self, cp: CellParams) -> CellClassifier | LanguageModelModule:
        net = build_network(self.family, cp.cell, self.vocab_size, len(self.labels), cp.model,
                            self.vectors, self.num_chars)
        if self.family == Family.LANGUAGE_MODEL:
            return LanguageModelModule(net, cp.train)
        return CellClassifier(net, cp.train, self.labels)
