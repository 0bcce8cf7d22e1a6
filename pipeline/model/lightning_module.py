"""The LightningModule: trains a built network (classifier or tagger) with TrainParams."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from pipeline.config import TrainParams
from pipeline.data.loading import Batch
from pipeline.model.networks import RecurrentNet, loss_and_hits
from pipeline.scoring.metrics import entity_scores, is_bio


def monitor_for(labels: list[str] | None) -> str:
    """The validation metric early stopping, the kept weights and tuning follow."""
    return "val_entity_f1" if labels and is_bio(labels) else "val_acc"


class CellClassifier(pl.LightningModule):
    """Trains a built network (`build_network`: a classifier or a tagger) with TrainParams, as
    lightning-hydra-template's modules receive theirs: what the network is stays with whoever
    builds it, and the same network is rebuilt for evaluation from the model's record."""

    def __init__(self, net: RecurrentNet, train: TrainParams, labels: list[str] | None = None):
        super().__init__()  # no saved hyperparameters: the model's record (train.json) has them
        self.net, self.train_params = net, train
        # NER: token accuracy is mostly the O tag (an all-O tagger scores 95% on WNUT-16), so
        # early stopping and the kept weights follow validation entity F1 instead.
        self.entity_labels = labels if labels and is_bio(labels) else None
        self.monitor = monitor_for(labels)
        self._val_tags: tuple[list[list[str]], list[list[str]]] = ([], [])

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.net(batch.ids, batch.lengths, batch.chars)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        lengths, targets = batch.lengths, batch.targets
        logits = self(batch)
        loss, hits, n = loss_and_hits(self.net, logits, lengths, targets)
        if stage == "val" and self.entity_labels:
            self._keep_tags(self.net.predict(logits, lengths), targets, lengths)
        # Weighted by counted targets: per-token means for tagging, per-example otherwise.
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=n,
                 prog_bar=stage == "train")
        self.log(f"{stage}_acc", hits / max(n, 1), on_step=False, on_epoch=True, batch_size=n,
                 prog_bar=True)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def _keep_tags(self, pred: torch.Tensor, gold: torch.Tensor, lengths: torch.Tensor) -> None:
        names = self.entity_labels
        for p, g, n in zip(pred.tolist(), gold.tolist(), lengths.tolist(), strict=True):
            self._val_tags[0].append([names[t] for t in g[:n]])
            self._val_tags[1].append([names[t] for t in p[:n]])

    def on_validation_epoch_end(self) -> None:
        if self.entity_labels:
            gold, pred = self._val_tags
            self.log("val_entity_f1", entity_scores(gold, pred)["f1"] if gold else 0.0,
                     prog_bar=True)
            self._val_tags = ([], [])

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        p = self.train_params
        # fused: one multithreaded pass per step. The for-loop Adam took 16 of a 40 ms
        # sentence-length CPU step, mostly the embedding's sqrt and div. Under mixed precision
        # Lightning cannot clip what a fused optimizer unscales itself: PyTorch's default then.
        fused = None if self._mixed_precision() else True
        if p.optimizer == "sgd":
            return torch.optim.SGD(self.trainable(), lr=p.lr, momentum=0.9,
                                   weight_decay=p.weight_decay, fused=fused)
        cls = torch.optim.AdamW if p.optimizer == "adamw" else torch.optim.Adam
        return cls(self.trainable(), lr=p.lr, weight_decay=p.weight_decay, fused=fused)

    def _mixed_precision(self) -> bool:
        try:
            return "mixed" in str(self.trainer.precision)
        except RuntimeError:  # not attached to a Trainer (a bare loop)
            return False
