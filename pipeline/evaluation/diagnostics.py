"""Long-range diagnostics of a trained network: its recurrence replayed step by step with the
textbook cell equations, which exposes what nn.RNN/LSTM/GRU keep inside their kernels (the
gates, and every hidden state as a node of the autograd graph).

- `unroll` re-runs a RecurrentEncoder from its own weights; `reference_error` checks it
  against the encoder (the report shows the difference, which must stay under 1e-5).
- `gradient_flow`: how much of the loss gradient at a sequence's last state survives k steps
  back, ||dL/dh_(T-k)|| / ||dL/dh_T|| through the recurrence alone (Pascanu et al., 2013):
  the vanishing gradient of the plain RNN, made visible.
- `gate_statistics`: LSTM input/forget/output and GRU reset/update gates over positions.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.data.loading import Batch, EncodedSplit, collate
from pipeline.model.encoder import RecurrentEncoder, reversal_index
from pipeline.scoring.records import Diagnostics

GATES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update"), "rnn": ()}
MIN_SEQUENCES = 10  # a distance or position is summarized only over at least this many
# How far back (and up to which position) the diagnostics look; longer sample sequences are cut
# to their first MAX_STEPS tokens, since the replay runs step by step in Python (float64):
# at IMDB lengths (up to 2,968 steps) it took 40 of an evaluate stage's 45 s.
MAX_STEPS = 400


@dataclass
class Trace:
    """One replay of a recurrent stack: outputs as the encoder gives them (batch first, zero on
    padding), every state per layer and direction in that direction's reading order, and the
    first layer's forward-direction gates ([B, T, H] each)."""

    outputs: torch.Tensor
    states: list[list[list[torch.Tensor]]] = field(default_factory=list)
    gates: dict[str, torch.Tensor] = field(default_factory=dict)


def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first `lengths[b]` steps of [B, T, ...], padding left in place (what
    the encoder's right-to-left direction reads)."""
    index = reversal_index(lengths.to(x.device), x.size(1))
    return x.gather(1, index.view(*index.shape, *[1] * (x.dim() - 2)).expand_as(x))


def run_direction(kind: str, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                  b_ih: torch.Tensor | None, b_hh: torch.Tensor | None,
                  nonlinearity: str = "tanh") -> tuple[list[torch.Tensor], dict[str, list]]:
    """One direction of one layer from h_0 = c_0 = 0, with PyTorch's gate order and equations
    (LSTM: i, f, g, o; GRU: r, z, n with r applied to W_hn h + b_hn)."""
    gi = F.linear(x, w_ih, b_ih)  # the input half of every gate, all steps at once
    h = x.new_zeros(x.size(0), w_hh.size(1))
    c = torch.zeros_like(h)
    steps: list[torch.Tensor] = []
    gates: dict[str, list[torch.Tensor]] = {name: [] for name in GATES[kind]}
    for t in range(x.size(1)):
        gh = F.linear(h, w_hh, b_hh)
        if kind == "lstm":
            i, f, g, o = (gi[:, t] + gh).chunk(4, dim=-1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            new = {"input": i, "forget": f, "output": o}
        elif kind == "gru":
            x_r, x_z, x_n = gi[:, t].chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            h = (1 - z) * torch.tanh(x_n + r * h_n) + z * h  # z near 1: keep the old state
            new = {"reset": r, "update": z}
        else:
            h = (torch.tanh if nonlinearity == "tanh" else torch.relu)(gi[:, t] + gh)
            new = {}
        steps.append(h)
        for name, value in new.items():
            gates[name].append(value)
    return steps, gates


def unroll(encoder: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor) -> Trace:
    """Replay `encoder` over x [B, T, E] from its weights, each direction of each layer step by
    step; the right-to-left direction reads each sequence from its own end."""
    mask = (torch.arange(x.size(1))[None, :] < lengths[:, None]).to(x.device)
    trace = Trace(outputs=x)
    layer_in = x
    for depth, layer in enumerate(encoder.layers):
        outs, per_direction = [], []
        for d, rnn in enumerate(layer):
            weights = [getattr(rnn, f"{name}_l0", None)
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            steps, gates = run_direction(encoder.cell,
                                         reverse_within(layer_in, lengths) if d else layer_in,
                                         *weights, nonlinearity=getattr(rnn, "nonlinearity",
                                                                        "tanh"))
            seq = torch.stack(steps, dim=1)
            outs.append(reverse_within(seq, lengths) if d else seq)
            per_direction.append(steps)
            if depth == 0 and d == 0:
                trace.gates = {name: torch.stack(v, dim=1) for name, v in gates.items()}
        trace.states.append(per_direction)
        layer_in = torch.cat(outs, dim=-1)
    trace.outputs = layer_in * mask[..., None]
    return trace


def reference_error(encoder: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor) -> float:
    """Max |reference - module| over the real positions of the encoder's outputs, both in
    float64: the equations are checked, not float32's rounding, which over 50 steps adds up to
    about 1e-5 by itself."""
    encoder = copy.deepcopy(encoder).double()
    x = x.double()
    with torch.no_grad():
        ours = unroll(encoder, x, lengths).outputs
        theirs = encoder(x, lengths)
    mask = torch.arange(x.size(1))[None, :] < lengths[:, None]
    return float((ours - theirs).abs()[mask].max())


def gradient_flow(net: nn.Module, batch: Batch, max_distance: int = MAX_STEPS
                  ) -> dict[str, list]:
    """Geometric mean over sequences (and directions) of ||dL/dh_(T-k)|| / ||dL/dh_T|| for
    k = 0, 1, ...: the gradient the loss sends into a direction's last state, carried back
    through the top layer's recurrence alone (other paths to the loss are left out). In
    float64: a plain RNN's ratio passes float32's smallest number (1e-38, 1e-45 subnormal)
    within 50 steps, and a floor there would draw a flat line that was never measured. A
    distance is kept while at least a tenth of the sample (and MIN_SEQUENCES) reaches it; each
    kept distance says how many sequences it rests on."""
    lengths = batch.lengths
    sums, counts = np.zeros(max_distance + 1), np.zeros(max_distance + 1)
    net = copy.deepcopy(net).double()
    with torch.enable_grad():
        x = net.features(batch.ids, batch.chars).detach()
        trace = unroll(net.encoder, x, lengths)
        loss = net.loss(net.readout(trace.outputs, lengths), batch.targets)
        rows, last = torch.arange(len(lengths)), lengths - 1
        for steps in trace.states[-1]:  # each direction, in its reading order
            total = torch.stack(torch.autograd.grad(loss, steps, retain_graph=True), dim=1)
            seed = total[rows, last]  # nothing real follows the last state: all of it is direct
            probe = (torch.stack(steps, dim=1)[rows, last] * seed).sum()
            back = torch.stack(torch.autograd.grad(probe, steps, retain_graph=True), dim=1)
            size = seed.norm(dim=-1)
            ratio = back.norm(dim=-1) / size.clamp_min(1e-300)[:, None]
            log_ratio = ratio.log10()  # -inf where even float64 holds nothing: vanished
            distance = last[:, None] - torch.arange(len(steps))[None, :]
            # a sequence that sends no gradient (all its targets ignored) says nothing
            valid = (distance >= 0) & (distance <= max_distance) & (size > 0)[:, None]
            d = distance[valid].numpy()
            sums += np.bincount(d, weights=log_ratio[valid].numpy(), minlength=len(sums))
            counts += np.bincount(d, minlength=len(counts))
    enough = min(max(MIN_SEQUENCES, 0.1 * counts[0]), counts[0]) if counts[0] else 1
    keep = [k for k in range(len(counts)) if counts[k] >= enough and counts[k] > 0]
    return {"distance": keep, "ratio": [float(10 ** (sums[k] / counts[k])) for k in keep],
            "sequences": [int(counts[k]) for k in keep]}


def gate_statistics(gates: dict[str, torch.Tensor], lengths: torch.Tensor,
                    max_position: int = MAX_STEPS, bins: int = 20) -> dict[str, Any]:
    """Per gate: a histogram of its activations over all units and real positions, and its
    quartiles at each position (where at least MIN_SEQUENCES sequences reach it)."""
    mask = torch.arange(next(iter(gates.values())).size(1))[None, :] < lengths[:, None] \
        if gates else None
    out: dict[str, Any] = {}
    for name, g in gates.items():
        g = g.detach()
        values = g[mask].flatten().numpy()
        counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
        positions: dict[str, list] = {"position": [], "q25": [], "median": [], "q75": []}
        for t in range(min(g.size(1), max_position)):
            reach = mask[:, t]
            if int(reach.sum()) < min(MIN_SEQUENCES, len(lengths)):
                break
            q25, q50, q75 = np.quantile(g[reach, t].flatten().numpy(), [0.25, 0.5, 0.75])
            for key, v in (("q25", q25), ("median", q50), ("q75", q75)):
                positions[key].append(round(float(v), 6))
            positions["position"].append(t)
        out[name] = {"mean": round(float(values.mean()), 6),
                     "saturated": round(float(((values < 0.1) | (values > 0.9)).mean()), 6),
                     "histogram": (counts / max(values.size, 1)).round(6).tolist(),
                     "edges": edges.round(6).tolist(), **positions}
    return out


def sample_batch(split: EncodedSplit, size: int, seed: int = 0, max_steps: int = MAX_STEPS
                 ) -> Batch:
    """A seeded sample of up to `size` test examples as one batch, each cut to its first
    `max_steps` tokens."""
    order = list(range(len(split)))
    random.Random(seed).shuffle(order)
    batch = collate([split[i] for i in sorted(order[:size])])
    if batch.ids.size(1) <= max_steps:
        return batch
    targets = batch.targets[:, :max_steps] if batch.targets.dim() == 2 else batch.targets
    chars = batch.chars[:, :max_steps] if batch.chars is not None else None
    return Batch(batch.ids[:, :max_steps], batch.lengths.clamp(max=max_steps), targets, chars)


def diagnose(net: nn.Module, split: EncodedSplit, size: int = 256) -> Diagnostics:
    """Reference check, gradient flow and gate statistics of a trained network (eval mode) on
    a seeded sample of `size` test examples."""
    batch = sample_batch(split, size)
    net.eval()
    with torch.no_grad():
        x = net.features(batch.ids, batch.chars)
        trace = unroll(net.encoder, x, batch.lengths)
    return Diagnostics(
        cell=net.encoder.cell, examples=len(batch.lengths), directions=net.encoder.directions,
        reference_max_abs_diff=reference_error(net.encoder, x, batch.lengths),
        gradient_flow=gradient_flow(net, batch),
        gates=gate_statistics(trace.gates, batch.lengths))
