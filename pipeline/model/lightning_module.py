"""The LightningModules: one trains a built classifier or tagger, the other a built language
model (truncated backpropagation through time, which Lightning 2 leaves to the module), each
with TrainParams."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from pipeline.config import Family, TrainParams
from pipeline.data.datamodule import Window
from pipeline.data.loading import IGNORE, Batch
from pipeline.model.language_model import LanguageModel, detach, token_nats
from pipeline.model.networks import RecurrentNet, loss_and_hits
from pipeline.model.record import lower_is_better, monitor_for
from pipeline.scoring.metrics import entity_scores, is_bio


class CellClassifier(pl.LightningModule):
    """Trains a built network (`build_network`: a classifier or a tagger) with TrainParams, as
    lightning-hydra-template's modules receive theirs: what the network is stays with whoever
    builds it, and the same network is rebuilt for evaluation from the model's record."""

    mode = "max"  # the monitored validation metric: higher is better

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
        return optimizer_for(self, self.train_params)


def optimizer_for(module: pl.LightningModule, p: TrainParams) -> torch.optim.Optimizer:
    """The optimizer of a module's trainable parameters (every task family's)."""
    trainable = [w for w in module.parameters() if w.requires_grad]
    # fused: one multithreaded pass per step. The for-loop Adam took 16 of a 40 ms
    # sentence-length CPU step, mostly the embedding's sqrt and div. Under mixed precision
    # Lightning cannot clip what a fused optimizer unscales itself: PyTorch's default then.
    fused = None if mixed_precision(module) else True
    if p.optimizer == "sgd":
        return torch.optim.SGD(trainable, lr=p.lr, momentum=0.9, weight_decay=p.weight_decay,
                               fused=fused)
    cls = torch.optim.AdamW if p.optimizer == "adamw" else torch.optim.Adam
    return cls(trainable, lr=p.lr, weight_decay=p.weight_decay, fused=fused)


def mixed_precision(module: pl.LightningModule) -> bool:
    try:
        return "mixed" in str(module.trainer.precision)
    except RuntimeError:  # not attached to a Trainer (a bare loop)
        return False


class LanguageModelModule(pl.LightningModule):
    """Trains a built `LanguageModel` with TrainParams. Early stopping and the kept weights
    follow validation perplexity, lower being better."""

    monitor = monitor_for(None, Family.LANGUAGE_MODEL)
    mode = "min" if lower_is_better(monitor) else "max"

    def __init__(self, net: LanguageModel, train: TrainParams):
        super().__init__()
        self.net, self.train_params = net, train
        self.state: list | None = None
        self._val_state: list | None = None
        self._val_nats, self._val_tokens = 0.0, 0

    def forward(self, ids: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        return self.net(ids, state)

    def _nats(self, batch: Window, state: list | None) -> tuple[torch.Tensor, int, list]:
        inputs, targets, _ = batch
        logits, state = self.net(inputs, state)
        counted = int((targets != IGNORE).sum())
        return token_nats(logits, targets).sum(), counted, state

    def training_step(self, batch: Window, batch_idx: int) -> torch.Tensor:
        if batch_idx == 0:  # each epoch reads the text from its start
            self.state = None
        nats, counted, state = self._nats(batch, self.state)
        self.state = detach(state)
        loss = nats / max(counted, 1)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=counted,
                 prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_state, self._val_nats, self._val_tokens = None, 0.0, 0

    def validation_step(self, batch: Window, batch_idx: int) -> None:
        nats, counted, self._val_state = self._nats(batch, self._val_state)
        self._val_nats += float(nats)
        self._val_tokens += counted
        self.log("val_loss", nats / max(counted, 1), on_step=False, on_epoch=True,
                 batch_size=counted)

    def on_validation_epoch_end(self) -> None:
        if self._val_tokens:
            self.log("val_ppl", math.exp(self._val_nats / self._val_tokens), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return optimizer_for(self, self.train_params)
