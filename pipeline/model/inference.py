"""A trained model folder back in memory, and the one batched forward pass that evaluation,
`predict` and the served MLflow Model all use."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import torch

from pipeline.data.loading import Batch, BucketBatchSampler, EncodedSplit, collate
from pipeline.errors import fail, one_line
from pipeline.model.networks import RecurrentNet
from pipeline.model.record import TrainRecord, read_record

WEIGHTS_FILE = "model.pt"


def load_trained(folder: Path, hint: str) -> tuple[RecurrentNet, TrainRecord]:
    """The network of a model folder, rebuilt from its record and loaded with its weights (in
    eval mode); one line ending in `hint` where the folder is missing or unreadable."""
    if not folder.is_dir():
        fail(f"{folder}: no trained model; {hint}")
    record = read_record(folder, hint=hint)
    weights = folder / WEIGHTS_FILE
    model = record.build_network()
    try:
        # an empty or cut-off file ends the unpickler early: EOFError, which Click would
        # otherwise take for Ctrl-D and answer with a bare "Aborted."
        model.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, RuntimeError) as err:
        reason = "empty file" if weights.is_file() and not weights.stat().st_size else (
            one_line(str(err)) or type(err).__name__)
        fail(f"{weights}: unreadable weights ({reason}); {hint}")
    return model.eval(), record


@torch.inference_mode()
def forward_batches(model: RecurrentNet, split: EncodedSplit, batch_size: int
                    ) -> Iterator[tuple[list[int], Batch, torch.Tensor]]:
    """(example indices, batch, logits) over the split in length-sorted batches: little compute
    goes to padding, and every example comes back under its own index."""
    for idx in BucketBatchSampler(split.lengths, batch_size, shuffle=False):
        batch = collate([split[i] for i in idx])
        yield idx, batch, model(batch.ids, batch.lengths, batch.chars)
