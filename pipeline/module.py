"""The LightningModule: loss, metrics and optimizer around a SentenceClassifier."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch.nn import functional as F

from pipeline.config import ModelParams, TrainParams
from pipeline.data import Batch
from pipeline.models import SentenceClassifier


class CellClassifier(pl.LightningModule):
    def __init__(self, cell: str, vocab_size: int, num_classes: int,
                 model: dict[str, Any], train: dict[str, Any],
                 vectors: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["vectors"])
        self.train_params = TrainParams(**train)
        self.net = SentenceClassifier(cell, vocab_size, num_classes, ModelParams(**model),
                                      vectors)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(ids, lengths)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        ids, lengths, labels = batch
        logits = self(ids, lengths)
        loss = F.cross_entropy(logits.float(), labels)
        acc = (logits.argmax(-1) == labels).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=len(labels),
                 prog_bar=on_step)
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, batch_size=len(labels),
                 prog_bar=True)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        p = self.train_params
        if p.optimizer == "sgd":
            return torch.optim.SGD(self.trainable(), lr=p.lr, momentum=0.9,
                                   weight_decay=p.weight_decay)
        cls = torch.optim.AdamW if p.optimizer == "adamw" else torch.optim.Adam
        return cls(self.trainable(), lr=p.lr, weight_decay=p.weight_decay)

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
