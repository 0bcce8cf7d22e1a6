"""The comparison statistics on inputs whose answers are known by hand."""

import math

import pytest

from pipeline.stats import Comparison, paired_bootstrap, paired_t, plain_words, summarize


def test_t_interval_by_hand():
    s = summarize([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)  # t(0.975, df 2) = 4.302653, sd = 1
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert (s.low, s.high) == pytest.approx((2 - half, 2 + half), abs=1e-6)


def test_one_seed_has_no_interval():
    s = summarize([0.77])
    assert (s.mean, s.std, s.low, s.high) == (0.77, 0.0, None, None)


def test_paired_t_matches_the_closed_form_for_three_degrees_of_freedom():
    # d = [1, 0, 2, -1]: mean 0.5, sd sqrt(5/3), t = 0.5 / (sd / 2) = 0.774597
    t = 0.5 / (math.sqrt(5 / 3) / 2)
    u = t / math.sqrt(3)
    cdf = 0.5 + (u / (1 + u * u) + math.atan(u)) / math.pi  # Student t CDF, df = 3
    test = paired_t([1, 2, 3, 4], [0, 2, 1, 5])
    assert test.diff == pytest.approx(0.5)
    assert test.p == pytest.approx(2 * (1 - cdf), abs=1e-9)  # 0.495
    assert paired_t([0.7], [0.6]) is None  # one seed: no test over seeds


def test_bootstrap_of_identical_cells_finds_nothing():
    hits = [1, 0, 1, 1, 0, 1]
    test = paired_bootstrap(hits, [1] * 6, hits, [1] * 6, samples=500)
    assert test.diff == 0 and test.p == 1.0


def test_bootstrap_of_a_cell_right_wherever_the_other_is_wrong():
    test = paired_bootstrap([1] * 50, [1] * 50, [0] * 50, [1] * 50, samples=500)
    assert test.diff == 1.0 and test.p == 0.0  # no draw reverses the order


def test_bootstrap_recomputes_ratio_metrics_and_is_reproducible():
    # per-sentence token hits over token counts: the metric is a ratio of sums, not a mean
    num_a, den_a = [9, 1, 5], [10, 1, 5]
    num_b, den_b = [10, 0, 4], [10, 1, 5]
    test = paired_bootstrap(num_a, den_a, num_b, den_b, samples=2000, seed=3)
    assert test.diff == pytest.approx(15 / 16 - 14 / 16)
    assert 0 < test.p <= 1
    assert test == paired_bootstrap(num_a, den_a, num_b, den_b, samples=2000, seed=3)
    with pytest.raises(ValueError, match="equally many"):
        paired_bootstrap([1], [1], [1, 0], [1, 1])


@pytest.mark.parametrize(("p", "words"), [
    (0.41, "GRU vs LSTM: +0.4 points, not significant (p = 0.41, t)"),
    (0.0372, "GRU vs LSTM: +0.4 points, significant (p = 0.037, t)"),
    (0.0004, "GRU vs LSTM: +0.4 points, significant (p < 0.001, t)"),
])
def test_verdict_in_plain_words(p, words):
    assert plain_words("GRU", "LSTM", Comparison(0.004, p, "t")) == words
