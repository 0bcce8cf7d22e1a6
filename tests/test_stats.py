"""The comparison statistics on inputs whose answers are known by hand."""

import math

import pytest

from pipeline.scoring.stats import (
    Comparison,
    bootstrap_interval,
    paired_bootstrap,
    paired_t,
    plain_words,
    seeds_needed,
    summarize,
)


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
    (0.0372, "GRU vs LSTM: +0.4 points, significant (p = 0.0372, t)"),
    (0.04996, "GRU vs LSTM: +0.4 points, significant (p = 0.0499, t)"),  # never "p = 0.05"
    (0.05, "GRU vs LSTM: +0.4 points, not significant (p = 0.05, t)"),
    (0.0004, "GRU vs LSTM: +0.4 points, significant (p < 0.001, t)"),
])
def test_verdict_in_plain_words(p, words):
    assert plain_words("GRU", "LSTM", Comparison(0.004, p, "t")) == words


def test_bootstrap_interval_of_a_coin_matches_the_normal_approximation():
    # 400 examples, half right: 0.5 +- 1.96 * sqrt(0.25 / 400) = [0.451, 0.549]
    hits = [1, 0] * 200
    low, high = bootstrap_interval(hits, [1] * 400, samples=20_000)
    assert low == pytest.approx(0.451, abs=0.006) and high == pytest.approx(0.549, abs=0.006)
    assert bootstrap_interval([1] * 30, [1] * 30, samples=200) == (1.0, 1.0)  # nothing varies


def test_bootstrap_interval_resamples_sentences_not_tokens():
    # one 10-token sentence all right, ten 1-token sentences all wrong: 10/20 tokens right;
    # a draw's accuracy moves in steps of whole sentences, so the interval is wider than the
    # 20-independent-tokens one (0.5 +- 0.22), and reproducible
    num, den = [10] + [0] * 10, [10] + [1] * 10
    low, high = bootstrap_interval(num, den, samples=5_000, seed=1)
    assert low < 0.28 and high > 0.72
    assert (low, high) == bootstrap_interval(num, den, samples=5_000, seed=1)


def test_bootstrap_draws_in_chunks_are_the_requested_count():
    from pipeline.scoring.stats import draws

    rows = [d.shape for d in draws(1_000, 10_000, seed=0, chunk=300_000)]
    assert sum(r for r, _ in rows) == 10_000 and {n for _, n in rows} == {1_000}
    assert len(rows) == 34  # 300 rows per chunk


@pytest.mark.parametrize(("effect", "seeds"), [(1.0, 10), (0.5, 34)])
def test_seeds_needed_matches_the_textbook_paired_t_sample_sizes(effect, seeds):
    """A paired t-test at alpha 0.05, 80% power: 10 pairs for a gap of one sd, 34 for half."""
    assert seeds_needed(effect * 0.01, 0.01) == seeds
    assert seeds_needed(0.0, 0.01) is None
