import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from benchmarks.baselines import TorchEncoder, with_encoder
from pipeline.config import ModelParams, parse_params
from pipeline.data.loading import IGNORE
from pipeline.model.encoder import segment_plan
from pipeline.model.networks import (
    RecurrentEncoder,
    SentenceClassifier,
    build_network,
    count_parameters,
    equal_params_width,
    pool,
)
from tests.conftest import repo_params

MODEL = ModelParams(**repo_params()["model"])


@pytest.mark.parametrize(("cell", "gates"), [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_parameter_counts_follow_the_cell_equations(cell, gates):
    # per layer and direction: gates * (H*(I+H) + 2H); I = H = 256 gives 131,584 / 394,752 / 526,336
    enc = RecurrentEncoder(cell, 256, 256)
    assert count_parameters(enc) == gates * (256 * 512 + 2 * 256)
    bi = RecurrentEncoder(cell, 256, 256, num_layers=2, bidirectional=True)
    assert count_parameters(bi) == 2 * gates * (256 * 512 + 2 * 256) + 2 * gates * (
        256 * (512 + 256) + 2 * 256)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_forward_shapes(cell, pooling, bidirectional):
    params = MODEL.model_copy(update={"pooling": pooling, "bidirectional": bidirectional,
                                      "embedding_dim": 8, "hidden_size": 6, "num_layers": 2})
    model = SentenceClassifier(cell, vocab_size=50, num_classes=3, params=params).eval()
    ids = torch.randint(2, 50, (5, 9))
    logits = model(ids, torch.tensor([9, 4, 1, 7, 2]))
    assert logits.shape == (5, 3)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
def test_output_ignores_padding(cell, pooling):
    """A sequence scores the same alone and padded inside a longer batch."""
    torch.manual_seed(0)
    params = MODEL.model_copy(update={"pooling": pooling, "bidirectional": True,
                                      "embedding_dim": 8, "hidden_size": 6})
    model = SentenceClassifier(cell, 30, 2, params).eval()
    seq = torch.tensor([[3, 4, 5]])
    alone = model(seq, torch.tensor([3]))
    padded = torch.tensor([[3, 4, 5, 0, 0, 0], [6, 7, 8, 9, 10, 11]])
    together = model(padded, torch.tensor([3, 6]))
    torch.testing.assert_close(together[:1], alone, rtol=1e-5, atol=1e-6)


def test_last_pooling_matches_the_final_hidden_states():
    torch.manual_seed(0)
    enc = RecurrentEncoder("gru", 4, 5, bidirectional=True).eval()
    x, lengths = torch.randn(3, 6, 4), torch.tensor([6, 2, 4])
    ref = TorchEncoder(enc)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    h_n = ref.rnn(packed)[1]  # [2, B, H]: forward final, backward final
    torch.testing.assert_close(pool(enc(x, lengths), lengths, "last", True),
                               torch.cat([h_n[0], h_n[1]], -1))


# Mixed lengths in one batch, unsorted: long rows that cut time into several segments, rows of
# one step, and a row that runs to the end.
MIXED = torch.tensor([7, 60, 1, 33, 60, 18, 2, 45, 59, 12, 3, 38])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_exact_padding_equals_packing_in_outputs_and_gradients(cell, layers, bidirectional):
    """In float64, so that the computation is compared and not float32's rounding (gradients
    of size 50 differ by 1.5e-5 in float32 between any two kernels)."""
    torch.manual_seed(1)
    enc = RecurrentEncoder(cell, 5, 7, layers, bidirectional).double()
    ref = TorchEncoder(enc).double()
    assert len(segment_plan(sorted(MIXED.tolist(), reverse=True))) > 1
    x = torch.randn(len(MIXED), 60, 5, dtype=torch.float64, requires_grad=True)
    real = (torch.arange(60) < MIXED[:, None])[..., None]  # padding outputs: unspecified
    out = enc(x, MIXED) * real
    expected = ref(x, MIXED)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    weight = torch.randn_like(out)  # any loss that reads every real output
    ours = torch.autograd.grad((out * weight).sum(), [x, *enc.parameters()])
    theirs = torch.autograd.grad((expected * weight).sum(), [x, *ref.parameters()])
    torch.testing.assert_close(ours[0], theirs[0], rtol=0, atol=1e-5)
    by_name = dict(zip([n for n, _ in ref.named_parameters()], theirs[1:], strict=True))
    for (name, _), grad in zip(enc.named_parameters(), ours[1:], strict=True):
        torch.testing.assert_close(grad, by_name[ref.names[name]], rtol=0, atol=1e-5, msg=name)


def network_pair(family: str, cell: str, update: dict) -> tuple:
    """A network and its copy whose encoder packs (same weights), in float64 and training mode
    without dropout, so that both see the same computation."""
    params = MODEL.model_copy(update={"embedding_dim": 6, "hidden_size": 5, "dropout": 0.0,
                                      "bidirectional": True, **update})
    torch.manual_seed(2)
    net = build_network(family, cell, 40, 5, params, num_chars=30).double()
    return net.train(), with_encoder(net, "packed").train()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("family", "update"), [
    ("classification", {"pooling": "max"}),
    ("classification", {"pooling": "mean", "num_layers": 2}),
    ("classification", {"pooling": "last"}),
    ("tagging", {}),
    ("tagging", {"crf": True, "char_filters": 4, "num_layers": 2}),
])
def test_heads_and_crf_train_exactly_as_with_packing(cell, family, update):
    net, ref = network_pair(family, cell, update)
    torch.manual_seed(3)
    ids = torch.randint(2, 40, (len(MIXED), 60)) * (torch.arange(60) < MIXED[:, None])
    chars = torch.randint(2, 30, (len(MIXED), 60, 4)) * (ids > 0)[..., None]
    targets = (torch.randint(0, 5, (len(MIXED),)) if family == "classification"
               else torch.randint(0, 5, ids.shape).masked_fill(ids == 0, IGNORE))
    losses = []
    for model in (net, ref):
        logits = model(ids, MIXED, chars if update.get("char_filters") else None)
        losses.append(model.loss(logits, targets))
        losses[-1].backward()
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-5)
    theirs = dict(ref.named_parameters())
    for name, p in net.named_parameters():
        other = name if name in theirs else "encoder." + ref.encoder.names[
            name.removeprefix("encoder.")]
        torch.testing.assert_close(p.grad, theirs[other].grad, rtol=0, atol=1e-5, msg=name)


def test_segment_plan_drops_finished_rows_only_where_it_pays():
    assert segment_plan([19, 19, 18, 18]) == [(0, 19, 4)]  # near-equal: one kernel call
    plan = segment_plan(list(range(700, 350, -5)))  # 70 rows of 355..700 steps
    assert plan[0][0] == 0 and plan[0][2] == 70 and plan[-1][1] == 700
    assert [s for s, _, _ in plan[1:]] == [e for _, e, _ in plan[:-1]]  # contiguous in time
    rows = [r for _, _, r in plan]
    assert rows == sorted(rows, reverse=True) and len(plan) > 4
    work = sum((e - s) * r for s, e, r in plan)
    assert work < 0.8 * 70 * 700  # most of the 25% padding skipped
    assert segment_plan([]) == [] and segment_plan([0, 0]) == []


@pytest.mark.parametrize(("family", "update", "chars"), [
    ("classification", {}, 0),
    ("tagging", {"num_layers": 2, "char_filters": 10, "crf": True}, 40),
    ("classification", {"bidirectional": False, "hidden_size": 64}, 0),
])
def test_equal_params_widths_match_the_lstm_budget_within_2_percent(family, update, chars):
    params = parse_params(repo_params()).model.model_copy(update=update)
    lstm = count_parameters(build_network(family, "lstm", 500, 5, params, num_chars=chars))
    widths = {}
    for cell in ("rnn", "lstm", "gru"):
        widths[cell] = equal_params_width(family, cell, 500, 5, params, chars)
        sized = params.model_copy(update={"hidden_size": widths[cell]})
        count = count_parameters(build_network(family, cell, 500, 5, sized, num_chars=chars))
        assert abs(count - lstm) <= 0.02 * lstm, (cell, count, lstm)
    assert widths["lstm"] == params.hidden_size
    assert widths["rnn"] > widths["gru"] > widths["lstm"]  # fewer gates, more units


def test_forget_bias_lands_in_the_lstm_forget_gate_and_nowhere_else():
    torch.manual_seed(0)
    plain = RecurrentEncoder("lstm", 5, 7, num_layers=2, bidirectional=True)
    torch.manual_seed(0)
    biased = RecurrentEncoder("lstm", 5, 7, num_layers=2, bidirectional=True, forget_bias=1.5)
    h = 7
    for name, value in biased.named_parameters():
        before = dict(plain.named_parameters())[name]
        if name.endswith("bias_ih_l0"):
            assert torch.equal(value[h:2 * h], torch.full((h,), 1.5))
        elif name.endswith("bias_hh_l0"):
            assert torch.equal(value[h:2 * h], torch.zeros(h))
        else:  # every weight as PyTorch initialized it
            assert torch.equal(value, before), name
            continue
        keep = torch.cat([value[:h], value[2 * h:]])
        assert torch.equal(keep, torch.cat([before[:h], before[2 * h:]])), name
    # What PyTorch's own LSTM makes of it: from zero input and state, and a cell state of 1,
    # the new cell state is sigmoid(forget) * 1 + sigmoid(input) * tanh(cell candidate).
    rnn = biased.layers[0][0]
    bias = rnn.bias_ih_l0 + rnn.bias_hh_l0
    i, f, g = bias[:h], bias[h:2 * h], bias[2 * h:3 * h]
    _, (_, c) = rnn(torch.zeros(1, 1, 5), (torch.zeros(1, 1, h), torch.ones(1, 1, h)))
    expected = torch.sigmoid(f) + torch.sigmoid(i) * torch.tanh(g)
    torch.testing.assert_close(c[0, 0], expected)
    assert torch.allclose(torch.sigmoid(f), torch.full((h,), torch.sigmoid(torch.tensor(1.5))))


def test_forget_bias_leaves_cells_without_a_forget_gate_alone():
    for cell in ("rnn", "gru"):
        torch.manual_seed(0)
        plain = RecurrentEncoder(cell, 5, 7)
        torch.manual_seed(0)
        biased = RecurrentEncoder(cell, 5, 7, forget_bias=1.0)
        assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), biased.parameters(),
                                                     strict=True))
