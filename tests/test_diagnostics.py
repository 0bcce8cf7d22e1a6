"""The replayed cell equations against PyTorch, the gradient probe and the gate statistics."""

import itertools

import pytest
import torch

from pipeline.config import ModelParams
from pipeline.data.loading import Batch, EncodedSplit
from pipeline.evaluation.diagnostics import (
    MAX_STEPS,
    gate_statistics,
    gradient_flow,
    reference_error,
    reverse_within,
    sample_batch,
    unroll,
)
from pipeline.model.networks import RecurrentEncoder, SentenceClassifier, TokenTagger

LENGTHS = torch.tensor([9, 3, 7, 1, 9])


def trained_encoder(cell: str, bidirectional: bool, layers: int) -> RecurrentEncoder:
    """An encoder after a few optimizer steps, so its weights are not the initial ones."""
    torch.manual_seed(0)
    enc = RecurrentEncoder(cell, 6, 12, layers, bidirectional, 0.0)
    opt = torch.optim.Adam(enc.parameters(), lr=0.05)
    for _ in range(5):
        x = torch.randn(5, 9, 6)
        loss = enc(x, LENGTHS).pow(2).mean() - enc(x, LENGTHS).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return enc.eval()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_replayed_equations_match_pytorch(cell, bidirectional, layers):
    enc = trained_encoder(cell, bidirectional, layers)
    assert reference_error(enc, torch.randn(5, 9, 6), LENGTHS) <= 1e-5


def test_replay_exposes_gates_in_range_and_every_state():
    enc = trained_encoder("lstm", True, 2)
    trace = unroll(enc, torch.randn(5, 9, 6), LENGTHS)
    assert set(trace.gates) == {"input", "forget", "output"}
    assert all(g.shape == (5, 9, 12) and g.min() >= 0 and g.max() <= 1
               for g in trace.gates.values())
    assert len(trace.states) == 2 and [len(d) for d in trace.states] == [2, 2]
    assert trace.outputs[3, 1:].abs().sum() == 0  # padding is zero, as pad_packed gives it


def test_reverse_within_keeps_padding_in_place():
    x = torch.arange(8.0).view(2, 4, 1)
    out = reverse_within(x, torch.tensor([4, 2]))
    assert out[..., 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def small_rnn(family: str, bidirectional: bool) -> SentenceClassifier | TokenTagger:
    params = ModelParams(embedding_dim=8, hidden_size=16, sizing="equal_width", num_layers=1,
                         bidirectional=bidirectional, dropout=0.0, pooling="mean",
                         freeze_embeddings=False, crf=False,
                         char_filters=0, forget_bias=None, tie_embeddings=False)
    torch.manual_seed(0)
    cls = SentenceClassifier if family == "classification" else TokenTagger
    net = cls("rnn", 30, 3, params).eval()
    with torch.no_grad():  # small weights: each step shrinks the gradient
        for p in net.encoder.parameters():
            p.uniform_(-0.1, 0.1)
    return net


@pytest.mark.parametrize("family", ["classification", "tagging"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradient_decays_monotonically_through_an_untrained_small_rnn(family, bidirectional):
    net = small_rnn(family, bidirectional)
    lengths = torch.tensor([20] * 12 + [14] * 12)
    ids = torch.randint(2, 30, (24, 20)) * (torch.arange(20)[None, :] < lengths[:, None])
    targets = (torch.randint(0, 3, (24,)) if family == "classification"
               else torch.randint(0, 3, (24, 20)).masked_fill(ids == 0, -100))
    flow = gradient_flow(net, Batch(ids, lengths, targets))
    ratio = flow["ratio"]
    assert flow["distance"] == list(range(20)) and ratio[0] == pytest.approx(1.0)
    assert all(b < a for a, b in itertools.pairwise(ratio)), ratio
    assert ratio[-1] < 1e-6  # geometric: ||W_hh|| < 1 and tanh' <= 1 at every step
    directions = 2 if bidirectional else 1
    assert flow["sequences"][0] == 24 * directions and flow["sequences"][15] == 12 * directions


def test_gradient_flow_is_measured_far_below_float32s_range():
    """A fast-vanishing RNN falls past 1e-38 within 40 steps: the curve keeps falling
    (float64), with no floor, and stops where fewer than a tenth of the sequences reach."""
    net = small_rnn("classification", False)
    with torch.no_grad():
        for p in net.encoder.parameters():
            p.mul_(0.2)
    lengths = torch.tensor([60] * 3 + [40] * 37)
    ids = torch.randint(2, 30, (40, 60)) * (torch.arange(60)[None, :] < lengths[:, None])
    flow = gradient_flow(net, Batch(ids, lengths, torch.randint(0, 3, (40,))))
    ratio = flow["ratio"]
    assert flow["distance"] == list(range(40))  # k >= 40: 3 of 40 sequences, too few
    assert ratio[-1] < 1e-40 and all(b < a for a, b in itertools.pairwise(ratio))


def test_gradient_probe_ignores_the_padding_and_the_batch_around_a_sequence():
    net = small_rnn("classification", False)
    ids = torch.randint(2, 30, (2, 10))
    ids[1, 6:] = 0
    a = gradient_flow(net, Batch(ids[:1], torch.tensor([10]), torch.tensor([1])))["ratio"]
    b = gradient_flow(net, Batch(ids[1:, :6], torch.tensor([6]), torch.tensor([2])))["ratio"]
    both = gradient_flow(net, Batch(ids, torch.tensor([10, 6]), torch.tensor([1, 2])))
    # the batch's curve is the geometric mean of the two sequences' own curves
    assert both["distance"] == list(range(6))
    assert both["ratio"] == pytest.approx([(x * y) ** 0.5 for x, y in zip(a, b, strict=False)],
                                          rel=1e-4)


def test_gate_statistics_summarize_real_positions_only():
    gates = {"update": torch.cat([torch.full((12, 3, 4), 0.25), torch.full((12, 2, 4), 0.95)],
                                 dim=1)}
    lengths = torch.tensor([3] * 6 + [5] * 6)
    stats = gate_statistics(gates, lengths)["update"]
    assert stats["position"] == [0, 1, 2]  # positions 3-4: only 6 sequences reach them
    assert stats["median"] == [0.25, 0.25, 0.25]
    assert sum(stats["histogram"]) == pytest.approx(1.0)
    # 6 of the 12 sequences have 2 saturated positions of 5: 12 of 48 real positions
    assert stats["saturated"] == pytest.approx(12 / 48)


def test_diagnostic_sample_is_cut_to_max_steps(tmp_path):
    """Document-length sequences are replayed over their first MAX_STEPS tokens only."""
    lengths = [3, MAX_STEPS + 50, 7]
    ids = torch.randint(2, 30, (sum(lengths),))
    offsets = torch.tensor([0, *itertools.accumulate(lengths)])
    path = tmp_path / "test.pt"
    torch.save({"ids": ids, "offsets": offsets, "labels": torch.tensor([0, 1, 0])}, path)
    batch = sample_batch(EncodedSplit(path), 10)
    assert batch.ids.shape == (3, MAX_STEPS)
    assert sorted(batch.lengths.tolist()) == [3, 7, MAX_STEPS]
    assert batch.ids[batch.lengths.argmax()].tolist() == ids[3:3 + MAX_STEPS].tolist()
