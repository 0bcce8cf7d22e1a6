"""The recurrent encoder: exact on padded batches, at the padded kernels' speed.

PyTorch's exact route for padded batches, PackedSequence, runs 8x (200 tokens) to 60-110x
(700 tokens) slower than the padded kernels on the CPU, and 5-100x on cuDNN (pytorch#149194).
The plain padded kernels are fast but inexact for bidirectional cells: the right-to-left
direction reads a row's padding before its last word. Here each layer runs each direction as
its own unidirectional kernel over the padded tensor:

- left to right as it is: padding comes after every real step, so no real state reads it;
- right to left on each row reversed within its own length (padding stays at the end), whose
  outputs are then reversed back;
- rows run longest first, and where lengths in a batch differ widely, time is cut into
  segments that drop the rows already finished (most of the padding is never computed).

Outputs at real positions and every gradient equal the packed path's (tests/test_models.py).
Outputs at padding positions are left unspecified, as with the padded kernels: every reader
masks them (pooling, the losses, the CRF, evaluation), which costs less than zeroing them here.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

RNN_CLASSES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
Plan = list[tuple[int, int, int]]  # (start, end, rows) per time segment
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # one layer's h, or an LSTM's (h, c)


class Dropout(nn.Dropout):
    """nn.Dropout whose CPU mask comes from torch.rand: the bernoulli_ behind F.dropout draws
    2.8x slower on the CPU (2.0 against 0.7 ms for a [64, 20, 128] batch), about a tenth of a
    sentence-length training step. Other devices keep PyTorch's fused kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        return x * ((torch.rand_like(x) >= self.p) * (1 / (1 - self.p))).to(x.dtype)


class _Reorder(torch.autograd.Function):
    """Move the [B, T] positions of x [B, T, F] by a permutation of them; the gradient moves
    back by the inverse permutation: a gather again, with no scatter-add to serialize in
    deterministic mode."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor
                ) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        return x.reshape(-1, x.size(-1)).index_select(0, index).view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (inverse,) = ctx.saved_tensors
        return grad.reshape(-1, grad.size(-1)).index_select(0, inverse).view_as(grad), None, None


def reorder(x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    return _Reorder.apply(x, index, inverse)


def reversal_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T]: the step each position reads when every row is reversed within its own length
    (padding stays in place). Its own inverse."""
    t = torch.arange(steps, device=lengths.device)[None, :]
    n = lengths[:, None]
    return torch.where(t < n, n - 1 - t, t)


def segment_plan(lengths: list[int], max_segments: int = 8, min_saved_steps: int = 4) -> Plan:
    """Time segments (start, end, rows) for rows sorted by descending length: during
    [start, end) only the first `rows` rows are still reading. Cut where a row-quantile's
    sequence ends; a cut that saves fewer than `min_saved_steps` full-batch steps is not worth
    another kernel call (bucketed batches of near-equal lengths run as one segment)."""
    if not lengths or lengths[0] == 0:
        return []
    batch, longest = len(lengths), lengths[0]
    quantiles = {lengths[round(j * (batch - 1) / max_segments)] for j in range(max_segments + 1)}
    cuts = sorted({0, longest} | {c for c in quantiles if 0 < c < longest})
    plan: Plan = []
    for start, end in itertools.pairwise(cuts):
        rows = sum(n > start for n in lengths)
        if plan and (plan[-1][2] - rows) * (end - start) < min_saved_steps * batch:
            plan[-1] = (plan[-1][0], end, plan[-1][2])  # the previous segment runs on
        else:
            plan.append((start, end, rows))
    return plan


def run_segments(rnn: nn.RNNBase, x: torch.Tensor, plan: Plan) -> torch.Tensor:
    """One unidirectional RNN over x [B, T, E] (rows sorted by descending length), segment by
    segment, each carrying on the state of the rows still reading; rows and steps outside the
    plan are zeros."""
    batch, steps = x.shape[:2]
    if not plan:
        return x.new_zeros(batch, steps, rnn.hidden_size)
    spans = [end - start for start, end, _ in plan]
    pieces = x.split([*spans, steps - sum(spans)], dim=1)
    outs: list[torch.Tensor] = []
    state: torch.Tensor | tuple[torch.Tensor, ...] | None = None
    for piece, (_, _, rows) in zip(pieces, plan, strict=False):
        if isinstance(state, tuple):  # LSTM: (h, c)
            state = tuple(s[:, :rows] for s in state)
        elif state is not None:
            state = state[:, :rows]
        out, state = rnn(piece[:rows], state)
        outs.append(F.pad(out, (0, 0, 0, 0, 0, batch - rows)) if rows < batch else out)
    if sum(spans) < steps:
        outs.append(x.new_zeros(batch, steps - sum(spans), rnn.hidden_size))
    return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]


def read(rnn: nn.RNNBase, x: torch.Tensor, plan: Plan, flip: torch.Tensor | None
         ) -> torch.Tensor:
    """One direction: left to right, or (with `flip`) right to left within each row's length."""
    if flip is None:
        return run_segments(rnn, x, plan)
    return reorder(run_segments(rnn, reorder(x, flip, flip), plan), flip, flip)


class RecurrentEncoder(nn.Module):
    """A stacked, optionally bidirectional RNN/LSTM/GRU over end-padded batches, exact (see
    the module's docstring).

    `layers[i][0]` reads left to right, `layers[i][1]` (bidirectional) right to left; each is
    a one-layer nn.RNN/LSTM/GRU, so diagnostics can replay its weights.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0,
                 forget_bias: float | None = None):
        super().__init__()
        self.cell, self.directions = cell, 2 if bidirectional else 1
        self.hidden_size = hidden_size
        self.between = Dropout(dropout)  # between stacked layers
        self.layers = nn.ModuleList(
            nn.ModuleList(
                RNN_CLASSES[cell](input_size if depth == 0 else hidden_size * self.directions,
                                  hidden_size, batch_first=True)
                for _ in range(self.directions))
            for depth in range(num_layers))
        self.output_size = hidden_size * self.directions
        if cell == "lstm" and forget_bias is not None:
            self.set_forget_bias(forget_bias)

    def set_forget_bias(self, value: float) -> None:
        """An LSTM's forget gate starts at bias `value`: PyTorch adds two bias vectors, each
        ordered (input, forget, cell, output) gates, so the input one's forget slice takes the
        value and the hidden one's is zero. After PyTorch's initialization: the random stream,
        and so every other weight, stays as without it."""
        h = self.hidden_size
        with torch.no_grad():
            for layer in self.layers:
                for rnn in layer:
                    rnn.bias_ih_l0[h:2 * h].fill_(value)
                    rnn.bias_hh_l0[h:2 * h].zero_()

    def carry(self, x: torch.Tensor, state: list[State] | None = None
              ) -> tuple[torch.Tensor, list[State]]:
        """Left to right over rows without padding (a language model's contiguous text), from
        each layer's state at the end of the previous window (None: zeros): x [B, T, E] ->
        outputs [B, T, H] and each layer's final state, which the next window starts from.
        The same kernels as `forward` on full-length rows, so the outputs are the same."""
        if self.directions != 1:
            raise ValueError("a carried state reads one direction: bidirectional must be false")
        h, finals = x.contiguous(), []
        for depth, (rnn,) in enumerate(self.layers):
            if depth:
                h = self.between(h)
            h, final = rnn(h, None if state is None else state[depth])
            finals.append(final)
        return h, finals

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: [B, T, E], lengths: [B] -> outputs [B, T, D*H] (padding positions: unspecified).
        Batches that come longest first (as BucketBatchSampler makes them) skip a reordering."""
        batch, steps = x.shape[:2]
        lengths = lengths.to(x.device)
        order = torch.argsort(lengths, descending=True, stable=True)
        ranked = lengths[order]
        plan = segment_plan(ranked.tolist())
        t = torch.arange(steps, device=x.device)
        rows = torch.arange(batch, device=x.device)[:, None]
        in_order = bool((order == rows[:, 0]).all())
        if not in_order:  # positions of the sorted rows in x, and back
            to_sorted = (order[:, None] * steps + t).flatten()
            from_sorted = (torch.argsort(order)[:, None] * steps + t).flatten()
            x = reorder(x, to_sorted, from_sorted)
        flip = (rows * steps + reversal_index(ranked, steps)).flatten()
        h = x.contiguous()
        for depth, layer in enumerate(self.layers):
            if depth:
                h = self.between(h)
            outs = [read(rnn, h, plan, flip if d else None) for d, rnn in enumerate(layer)]
            h = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        return h if in_order else reorder(h, from_sorted, to_sorted)
