"""The CRF against brute-force enumeration of every tag sequence on tiny inputs."""

import itertools

import pytest
import torch

from pipeline.model.crf import CRF


@torch.no_grad()
def brute(crf: CRF, emissions: torch.Tensor, length: int) -> tuple[torch.Tensor, list[int]]:
    """(log partition, best path) by scoring all C**length sequences."""
    c = emissions.size(-1)
    scores = {}
    for seq in itertools.product(range(c), repeat=length):
        s = crf.start[seq[0]] + emissions[0, seq[0]] + crf.end[seq[-1]]
        for t in range(1, length):
            s = s + crf.trans[seq[t - 1], seq[t]] + emissions[t, seq[t]]
        scores[seq] = s
    stacked = torch.stack(list(scores.values()))
    return torch.logsumexp(stacked, 0), list(max(scores, key=lambda k: scores[k].item()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partition_and_viterbi_match_brute_force(seed):
    torch.manual_seed(seed)
    crf = CRF(3)
    with torch.no_grad():
        crf.start.normal_()
        crf.end.normal_()
        crf.trans.normal_()
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        logz = crf.log_partition(emissions, mask)
    paths = crf.decode(emissions, mask)
    for row, length in enumerate((4, 2)):
        expected_logz, expected_path = brute(crf, emissions[row], length)
        torch.testing.assert_close(logz[row], expected_logz)
        assert paths[row, :length].tolist() == expected_path
        assert paths[row, length:].tolist() == [0] * (4 - length)


def test_nll_is_positive_and_lowest_for_the_best_path():
    torch.manual_seed(3)
    crf = CRF(3)
    emissions = torch.randn(1, 3, 3) * 3
    mask = torch.ones(1, 3, dtype=torch.bool)
    best = crf.decode(emissions, mask)
    other = (best + 1) % 3
    assert 0 < crf.nll(emissions, best, mask) < crf.nll(emissions, other, mask)


def test_padding_does_not_change_the_loss():
    torch.manual_seed(4)
    crf = CRF(4)
    short = torch.randn(1, 2, 4)
    padded = torch.cat([short, torch.randn(1, 3, 4) * 100], dim=1)
    tags = torch.tensor([[1, 2]])
    loss_short = crf.nll(short, tags, torch.ones(1, 2, dtype=torch.bool))
    loss_padded = crf.nll(padded, torch.tensor([[1, 2, -100, -100, -100]]),
                          torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool))
    torch.testing.assert_close(loss_short, loss_padded)
