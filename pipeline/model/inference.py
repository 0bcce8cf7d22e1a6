"""A trained model folder back in memory, and the one batched forward pass that evaluation,
`predict` and the served MLflow Model all use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from pipeline.data.loading import Batch, BucketBatchSampler, EncodedSplit, collate
from pipeline.errors import fail
from pipeline.model.networks import RecurrentNet
from pipeline.model.record import TrainRecord, read_record

WEIGHTS_FILE = "model.pt"


def load_trained(folder: Path, hint: str) -> tuple[RecurrentNet, TrainRecord]:
    """The network of a model folder, rebuilt from its record and loaded with its weights (in
    eval mode); one line ending in `hint` where the folder is missing or unreadable."""
    if not folder.is_dir():
        fail(f"{folder}: no trained model; {hint}")
    record = read_record(folder, hint=hint)
    try:
        state = torch.load(folder / WEIGHTS_FILE, weights_only=True, map_location="cpu")
    except (OSError, ValueError, RuntimeError) as err:
        fail(f"{folder / WEIGHTS_FILE}: unreadable ({err}); {hint}")
    model = record.build_network()
    model.load_state_dict(state)
    return model.eval(), record


@torch.inference_mode()
def forward_batches(model: RecurrentNet, split: EncodedSplit, batch_size: int
                    ) -> Iterator[tuple[list[int], Batch, torch.Tensor]]:
    """(example indices, batch, logits) over the split in length-sorted batches: little compute
    goes to padding, and every example comes back under its own index."""
    for idx in BucketBatchSampler(split.lengths, batch_size, shuffle=False):
        batch = collate([split[i] for i in idx])
        yield idx, batch, model(batch.ids, batch.lengths, batch.chars)
