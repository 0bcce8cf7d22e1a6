"""The comparison statistics on inputs whose answers are known by hand."""

import math

import numpy as np
import pytest

from pipeline.scoring.stats import (
    Comparison,
    bootstrap_interval,
    holding,
    paired_bootstrap,
    plain_words,
    seeds_needed,
    summarize,
    two_level_bootstrap,
    two_level_interval,
)


def test_t_interval_by_hand():
    s = summarize([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)  # t(0.975, df 2) = 4.302653, sd = 1
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert (s.low, s.high) == pytest.approx((2 - half, 2 + half), abs=1e-6)


def test_one_seed_has_no_interval():
    s = summarize([0.77])
    assert (s.mean, s.std, s.low, s.high) == (0.77, 0.0, None, None)


def test_a_constant_gap_over_seeds_is_not_certain_when_the_test_sample_is_small():
    """Three seeds, LSTM one example ahead of GRU on each, over 20 test examples: a t-test over
    seeds saw no spread and said p = 0; the test sample alone makes the gap uncertain."""
    gru = np.tile(np.r_[np.ones(10), np.zeros(10)], (3, 1))
    lstm = gru.copy()
    lstm[:, 10] = 1  # one more hit per seed
    test = two_level_bootstrap(lstm, np.ones_like(lstm), gru, np.ones_like(gru), samples=2_000)
    assert test.diff == pytest.approx(0.05) and test.p > 0.05
    assert test.method == ("two-level bootstrap over 3 seeds and 20 test examples "
                           "(2,000 draws)")


def test_retraining_that_reverses_the_gap_is_not_significant_however_many_examples():
    """On 2,000 examples the cells differ by 10 points in each seed, but seed 1 favours LSTM
    and seeds 2 and 3 favour GRU: pooling seeds' examples (one bootstrap level) calls the mean
    gap certain; resampling the seeds as well does not."""
    rng = np.random.default_rng(0)
    base = (rng.random((3, 2000)) < 0.7).astype(float)
    lstm, gru = base.copy(), base.copy()
    lstm[0, :200], gru[0, :200] = 1, 0  # seed 1: LSTM right where GRU is wrong
    lstm[1:, :200], gru[1:, :200] = 0, 1  # seeds 2 and 3: the other way round
    ones = np.ones_like(base)
    two = two_level_bootstrap(lstm, ones, gru, ones, samples=2_000)
    pooled = paired_bootstrap(lstm.sum(0), ones.sum(0), gru.sum(0), ones.sum(0), samples=2_000)
    assert pooled.p < 0.001 and two.p > 0.2
    assert two.diff == pytest.approx(pooled.diff)


def test_a_two_level_interval_covers_both_sources_of_variance():
    hits = (np.random.default_rng(1).random((4, 500)) < 0.8).astype(float)
    same_seeds = np.tile(hits[0], (4, 1))
    ones = np.ones_like(hits)
    low, high = two_level_interval(hits, ones, samples=2_000)
    assert low < hits.mean() < high
    lo1, hi1 = bootstrap_interval(hits[0], ones[0], samples=2_000)
    lo2, hi2 = two_level_interval(same_seeds, ones, samples=2_000)
    assert hi2 - lo2 == pytest.approx(hi1 - lo1, rel=0.15)  # seeds alike: the test sample only
    with pytest.raises(ValueError, match="seeds x examples"):
        two_level_interval(hits[0], ones[0])


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
    (0.41, "GRU vs LSTM: +0.4 points, not significant (p = 0.410, t)"),
    (0.0372, "GRU vs LSTM: +0.4 points, significant (p = 0.0372, t)"),
    (0.04996, "GRU vs LSTM: +0.4 points, significant (p = 0.0499, t)"),  # never "p = 0.05"
    (0.05, "GRU vs LSTM: +0.4 points, not significant (p = 0.0500, t)"),
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


def test_an_interval_holds_its_own_estimate_even_when_every_resample_misses_it():
    """With a handful of unequal groups a ratio's resamples can fall wholly on one side of it
    (a fresh clone's tiny POS test split did: the card's error bar came out negative); every
    interval is widened to hold its estimate."""
    assert holding(0.5, np.array([0.6, 0.7, 0.8]), 0.95) == (0.5, pytest.approx(0.795))
    num, den = np.array([1.0, 0.0, 50.0]), np.array([1.0, 98.0, 50.0])
    estimate = num.sum() / den.sum()
    low, high = bootstrap_interval(num, den, samples=2_000)
    assert low <= estimate <= high
    seeds = two_level_interval(np.stack([num, num]), np.stack([den, den]), samples=2_000)
    assert seeds[0] <= estimate <= seeds[1]


def test_too_few_groups_are_not_tested_however_one_sided() -> None:
    """Five test documents all favouring one cell: every bootstrap draw agrees, which would
    read p < 0.001, where an exact sign test gives at best 0.0625. Nothing is claimed below
    six units; at six it is tested again."""
    for n in (1, 5):
        a, b = [1.0] * n, [0.0] * n
        test = paired_bootstrap(a, [1] * n, b, [1] * n, samples=500)
        assert test.p == 1 and test.diff == 1 and "not tested" in test.method
        two = two_level_bootstrap([a, a], [[1] * n] * 2, [b, b], [[1] * n] * 2, samples=500)
        assert two.p == 1 and "not tested" in two.method
    six = paired_bootstrap([1.0] * 6, [1] * 6, [0.0] * 6, [1] * 6, samples=500)
    assert six.p < 0.05 and "not tested" not in six.method
