import pytest
import torch

from pipeline.config import ModelParams, parse_params
from pipeline.models import (
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
def test_packed_output_ignores_padding(cell, pooling):
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
    out = enc(x, lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                     enforce_sorted=False)
    h_n = enc.rnn(packed)[1]  # [2, B, H]: forward final, backward final
    torch.testing.assert_close(pool(out, lengths, "last", True), torch.cat([h_n[0], h_n[1]], -1))


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
