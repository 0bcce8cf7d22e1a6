"""The recurrent language model: embedding -> dropout -> a unidirectional RNN/LSTM/GRU
(`RecurrentEncoder`, with its state carried from one window to the next) -> dropout -> a
linear layer over the vocabulary, whose weights can be the embedding's (Press & Wolf 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.config import ModelParams
from pipeline.data.loading import IGNORE
from pipeline.data.text import PAD_ID
from pipeline.model.encoder import Dropout, RecurrentEncoder, State
from pipeline.model.networks import make_embedding

INIT_RANGE = 0.1


class LanguageModel(nn.Module):
    """Next-token logits at every step. With `tied` input and output embeddings share one
    matrix; where the hidden size differs from the embedding's, a linear layer (without
    bias) maps the states to the embedding's width first."""

    def __init__(self, cell: str, vocab_size: int, params: ModelParams, tied: bool,
                 vectors: dict[str, torch.Tensor] | None = None):
        super().__init__()
        if params.bidirectional:
            raise ValueError("a language model reads left to right: set model.bidirectional "
                             "false")
        self.embedding = make_embedding(vocab_size, params, vectors)
        self.encoder = RecurrentEncoder(cell, params.embedding_dim, params.hidden_size,
                                        params.num_layers, False, params.dropout,
                                        params.forget_bias)
        self.dropout = Dropout(params.dropout)
        width = params.embedding_dim if tied else params.hidden_size
        self.down = (nn.Linear(params.hidden_size, width, bias=False)
                     if width != params.hidden_size else None)
        self.head = nn.Linear(width, vocab_size)
        if tied:
            self.head.weight = self.embedding.weight
        # word_language_model's start (and Zaremba et al.'s): small word vectors and a zero
        # output bias. PyTorch's N(0, 1) embedding, tied to the output layer, starts every
        # softmax far too sure of itself: 76-77 against 69-70 validation perplexity after 6
        # epochs (benchmarks/word_language_model.py, docs/language_model.md).
        with torch.no_grad():
            if vectors is None:
                self.embedding.weight.uniform_(-INIT_RANGE, INIT_RANGE)
                self.embedding.weight[PAD_ID].zero_()
            if not tied:
                self.head.weight.uniform_(-INIT_RANGE, INIT_RANGE)
            self.head.bias.zero_()

    def read(self, ids: torch.Tensor, state: list[State] | None = None
             ) -> tuple[torch.Tensor, list[State]]:
        """ids [B, T] from each layer's carried state -> the last layer's outputs [B, T, H]
        and the state the next window starts from (not detached: the caller cuts the graph)."""
        return self.encoder.carry(self.dropout(self.embedding(ids)), state)

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Outputs [..., H] -> next-token logits [..., V]."""
        h = self.dropout(h)
        return self.head(h if self.down is None else self.down(h))

    def forward(self, ids: torch.Tensor, state: list[State] | None = None
                ) -> tuple[torch.Tensor, list[State]]:
        """ids [B, T] -> logits [B, T, V] at every step, and the state carried on."""
        h, state = self.read(ids, state)
        return self.readout(h), state


def detach(state: list[State]) -> list[State]:
    """The carried state without its history: truncated backpropagation stops here."""
    return [tuple(s.detach() for s in layer) if isinstance(layer, tuple) else layer.detach()
            for layer in state]


def token_nats(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, T, V] logits, [B, T] targets -> [B, T] negative log-likelihoods in nats (float32,
    0 where the target is IGNORE). Flattened: with the classes as dimension 1 of a transposed
    view, cross_entropy took 49 ms instead of 12 for a [20, 35, 4577] window on the CPU."""
    nats = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="none")
    return nats.view(targets.shape)


@torch.inference_mode()
def sequence_nats(net: LanguageModel, sequences: Sequence[Sequence[int]], batch_size: int = 64
                  ) -> list[torch.Tensor]:
    """Each sequence scored on its own from a zero state: [ids[1:]] nats, each target read
    from the ids before it. Batched by length, padded at the end (which a left-to-right model
    never reads before a real target)."""
    out: list[torch.Tensor] = [torch.zeros(0)] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(sequences[i]) for i in chunk)
        ids = torch.full((len(chunk), width), PAD_ID, dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, :len(sequences[i])] = torch.as_tensor(sequences[i])
        targets = ids[:, 1:].masked_fill(ids[:, 1:] == PAD_ID, IGNORE)
        nats = token_nats(net(ids[:, :-1])[0], targets)
        for row, i in enumerate(chunk):
            out[i] = nats[row, :len(sequences[i]) - 1].clone()
    return out
