"""What rnnbench's encoder is measured against: PyTorch's own RNN paths on the same weights,
synthetic batches of given lengths, a bare training step, and the cells' FLOP counts.

`TorchEncoder` is also the oracle of the exactness tests (tests/test_models.py): packed, it is
what PyTorch offers for exact padding; unpacked, the plain padded kernel, whose right-to-left
direction reads the padding first.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.config import ModelParams
from pipeline.model.encoder import RecurrentEncoder

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class TorchEncoder(nn.Module):
    """One multi-layer nn.RNN/LSTM/GRU holding a copy of a RecurrentEncoder's weights, run over
    a PackedSequence (`packed`) or over the padded tensor as it is."""

    def __init__(self, encoder: RecurrentEncoder, packed: bool = True):
        super().__init__()
        first = encoder.layers[0][0]
        self.rnn = type(first)(first.input_size, encoder.hidden_size,
                               num_layers=len(encoder.layers), batch_first=True,
                               bidirectional=encoder.directions == 2,
                               dropout=encoder.between.p if len(encoder.layers) > 1 else 0.0)
        self.packed, self.output_size = packed, encoder.output_size
        # our parameter name -> its name
        self.names = {f"layers.{depth}.{d}.{w}_l0": f"rnn.{w}_l{depth}{'_reverse' if d else ''}"
                      for depth, layer in enumerate(encoder.layers)
                      for d in range(len(layer)) for w in WEIGHTS}
        theirs = dict(self.named_parameters())
        with torch.no_grad():
            for name, p in encoder.named_parameters():
                theirs[self.names[name]].copy_(p)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return self.rnn(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                   total_length=x.size(1))[0]


def with_encoder(net: nn.Module, path: str) -> nn.Module:
    """`net` itself for the exact path, else a copy whose encoder is PyTorch's packed or
    padded one, on the same weights."""
    if path == "exact":
        return net
    clone = copy.deepcopy(net)
    like = next(net.encoder.parameters())
    clone.encoder = TorchEncoder(net.encoder, packed=path == "packed").to(like.device,
                                                                          like.dtype)
    return clone


def classifier_params(embedding: int, hidden: int) -> ModelParams:
    """The benchmarks' network: a bidirectional one-layer cell, mean pooling, no dropout."""
    return ModelParams(embedding_dim=embedding, hidden_size=hidden, sizing="equal_width",
                       num_layers=1, bidirectional=True, dropout=0.0, pooling="mean",
                       freeze_embeddings=False, crf=False, char_filters=0, forget_bias=None,
                       tie_embeddings=False)


def uniform_lengths(batch: int, longest: int, generator: torch.Generator) -> torch.Tensor:
    """Lengths drawn uniformly from longest/2..longest (the issue's 700-token batches)."""
    return torch.randint(longest // 2, longest + 1, (batch,), generator=generator)


def imdb_lengths(count: int, generator: torch.Generator, longest: int = 2500) -> torch.Tensor:
    """Review lengths shaped like IMDB's (tokens): log-normal, median 230, long right tail,
    clipped to 10..longest."""
    z = torch.randn(count, generator=generator)
    return (math.log(230) + 0.75 * z).exp().round().clamp(10, longest).long()


def synthetic_batch(lengths: torch.Tensor, vocab: int, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random word ids (padding 0 after each length), the lengths, random binary labels."""
    steps = int(lengths.max())
    ids = torch.randint(2, vocab, (len(lengths), steps), generator=generator)
    ids = ids * (torch.arange(steps)[None, :] < lengths[:, None])
    return ids, lengths, torch.randint(0, 2, (len(lengths),), generator=generator)


def bare_step(net: nn.Module, opt: torch.optim.Optimizer, batch: tuple, clip: float = 1.0,
              autocast: torch.dtype | None = None) -> None:
    """One training step the way a hand-written PyTorch loop does it."""
    ids, lengths, labels = batch
    opt.zero_grad(set_to_none=True)
    with torch.autocast(ids.device.type, dtype=autocast or torch.float32,
                        enabled=autocast is not None):
        loss = F.cross_entropy(net(ids, lengths).float(), labels)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    opt.step()


def seconds_per_call(fn: Callable[[], None], repeats: int, warmup: int = 1,
                     sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def training_flops(cell: str, input_size: int, hidden: int, directions: int, tokens: int
                   ) -> float:
    """FLOPs of one training step of one recurrent layer over `tokens` real steps, from the
    cell's equations: per token and direction, gates x (input + hidden) x hidden
    multiply-adds forward (2 FLOPs each), and twice that backward (the gradients of the
    inputs and of the weights). Pointwise work is left out: the matrix products dominate."""
    forward = 2 * GATES[cell] * hidden * (input_size + hidden)
    return 3 * forward * directions * tokens


def matmul_rate(rows: int, inner: int, cols: int, device: torch.device,
                dtype: torch.dtype = torch.float32, seconds: float = 0.5) -> float:
    """This machine's measured FLOP/s for [rows x inner] @ [inner x cols], the shape of one
    recurrent step's product."""
    a = torch.randn(rows, inner, device=device, dtype=dtype)
    b = torch.randn(inner, cols, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    calls = 1
    while True:
        sync()
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        sync()
        took = time.perf_counter() - start
        if took >= seconds:
            return 2 * rows * inner * cols * calls / took
        calls *= 2
