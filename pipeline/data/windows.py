"""Contiguous text in rows, read in windows of `bptt` steps with the state carried from one
window to the next (truncated backpropagation through time), as PyTorch's
`word_language_model` example lays it out, except that no token is dropped: its `batchify`
drops the stream's last (tokens mod batch) targets, here the last row is shorter instead and
its padding is never a target, so every target is scored exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from pipeline.data.loading import IGNORE
from pipeline.data.text import PAD_ID

# Validation and test read each split as one row: every target is predicted from all the text
# before it in its split (word_language_model evaluates 10 rows, each from its own start).
EVAL_ROWS = 1
# Evaluation keeps no gradient, so its windows can be long: fewer, larger matrix products
# (validation in 35-step windows of one row took more of an epoch than it needs).
EVAL_WINDOW = 256


@dataclass(frozen=True)
class Rows:
    inputs: torch.Tensor  # [B, L] ids, PAD_ID after the last row's end
    targets: torch.Tensor  # [B, L] the next id, IGNORE on padding
    positions: torch.Tensor  # [B, L] each target's index in the stream's targets, -1 on padding

    def windows(self, bptt: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(inputs, targets, positions), `bptt` steps at a time (the last window shorter)."""
        for start in range(0, self.inputs.size(1), bptt):
            cut = slice(start, start + bptt)
            yield self.inputs[:, cut], self.targets[:, cut], self.positions[:, cut]

    def count(self, bptt: int) -> int:
        return -(-self.inputs.size(1) // bptt)


def rows(ids: torch.Tensor, batch_size: int) -> Rows:
    """A stream's targets (ids[1:], each predicted from the ids before it) in at most
    `batch_size` contiguous rows of equal length, the last shorter. Row r reads
    ids[s : s + L] and predicts ids[s + 1 : s + L + 1], from its own start: a row's first
    targets see only the context inside it, as in `word_language_model`."""
    targets = len(ids) - 1
    if targets < 1:
        raise ValueError("a stream of text needs at least one target")
    length = -(-targets // batch_size)
    count = -(-targets // length)  # rows that hold a target
    position = torch.arange(count * length).view(count, length)
    real = position < targets
    at = position.clamp(max=targets - 1)
    return Rows(torch.where(real, ids[at], PAD_ID), torch.where(real, ids[at + 1], IGNORE),
                torch.where(real, position, -1))
