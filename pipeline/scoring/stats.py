"""Statistics for comparing cells: intervals (over seeds, or over test examples for a single
seed) and paired significance tests.

Every metric rnnbench ranks by is a ratio of sums over test examples (accuracy: hits/counted;
entity F1: 2tp / (2tp + fp + fn)), so one paired bootstrap over examples serves all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Summary:
    """A metric over seeds: mean, sample standard deviation and a 95% t-interval."""

    n: int
    mean: float
    std: float  # 0 for one seed
    low: float | None  # None for one seed: no interval from a single value
    high: float | None


def summarize(values: Sequence[float], level: float = 0.95) -> Summary:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to summarize")
    mean = float(x.mean())
    if x.size == 1:
        return Summary(1, mean, 0.0, None, None)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, x.size - 1)) * std / math.sqrt(x.size)
    return Summary(int(x.size), mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two cells: mean difference (a - b), two-sided p-value, method."""

    diff: float
    p: float
    method: str


def ratio(num: np.ndarray, den: np.ndarray) -> float:
    total = float(den.sum())
    return float(num.sum()) / total if total else 0.0


def draws(n: int, samples: int, seed: int, chunk: int = 4_000_000) -> Iterator[np.ndarray]:
    """`samples` resamples of n example indices, as rows, a few at a time: all at once, a
    25,000-review IMDB test set would take 2 GB per array."""
    rng = np.random.default_rng(seed)
    rows = max(1, chunk // n)
    for start in range(0, samples, rows):
        yield rng.integers(0, n, size=(min(rows, samples - start), n))


def resampled(num: np.ndarray, den: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """The metric sum(num) / sum(den) over each row of drawn example indices (0 where a draw
    counts nothing, e.g. no entities at all)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(num[picks].sum(axis=1) / den[picks].sum(axis=1))


def paired_bootstrap(num_a: Sequence[float], den_a: Sequence[float],
                     num_b: Sequence[float], den_b: Sequence[float],
                     samples: int = 10_000, seed: int = 0,
                     unit: str = "test examples") -> Comparison:
    """Resample test examples (or the groups they were split by, as per-group sums: `unit`
    names them) with replacement, the same draw for both cells, and recompute the metric
    (sum num / sum den) for each. The p-value is twice the share of draws in which the
    difference falls on the other side of zero (or on it) than the observed one."""
    arrays = [np.asarray(v, dtype=float) for v in (num_a, den_a, num_b, den_b)]
    n = arrays[0].size
    if any(a.size != n for a in arrays) or n == 0:
        raise ValueError("paired bootstrap needs equally many per-example values for both cells")
    observed = ratio(arrays[0], arrays[1]) - ratio(arrays[2], arrays[3])
    method = f"paired bootstrap over {n:,} {unit} ({samples:,} draws)"
    if n < MIN_UNITS:
        return too_few(observed, n, unit, method)
    diffs = np.concatenate([resampled(arrays[0], arrays[1], d) - resampled(arrays[2], arrays[3], d)
                            for d in draws(n, samples, seed)])
    return Comparison(observed, two_sided(observed, diffs), method)


# Below this many resampled units (test groups) no test is run: a bootstrap over a handful of
# documents finds every draw on one side and says p < 0.001, where an exact sign test over 5
# units all favouring one cell gives at best p = 2 / 2^5 = 0.0625.
MIN_UNITS = 6


def too_few(observed: float, n: int, unit: str, method: str) -> Comparison:
    """An untested comparison: p = 1, and the method says why."""
    return Comparison(observed, 1.0, f"{method}: not tested, {n} {unit} are too few for any "
                                     f"test to reach p < 0.05 (at least {MIN_UNITS} needed)")


def two_sided(observed: float, diffs: np.ndarray) -> float:
    """Twice the share of resampled differences on the other side of zero (or on it) than the
    observed one."""
    if observed > 0:
        tail = np.mean(diffs <= 0)
    elif observed < 0:
        tail = np.mean(diffs >= 0)
    else:
        tail = 0.5
    return float(min(1.0, 2 * tail))


def seed_draws(seeds: int, n: int, samples: int, seed: int, chunk: int = 4_000_000
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`samples` two-level resamples, a few at a time: seed indices (rows of `seeds`) and test
    example indices (rows of n), both with replacement."""
    rng = np.random.default_rng(seed)
    rows = max(1, chunk // (n * seeds))
    for start in range(0, samples, rows):
        k = min(rows, samples - start)
        yield rng.integers(0, seeds, size=(k, seeds)), rng.integers(0, n, size=(k, n))


def seed_averaged(num: np.ndarray, den: np.ndarray, seed_picks: np.ndarray,
                  picks: np.ndarray) -> np.ndarray:
    """Per draw, the metric of each drawn seed over the drawn examples, averaged over the drawn
    seeds (`num`, `den`: seeds x examples)."""
    per_seed = np.stack([resampled(num[s], den[s], picks) for s in range(num.shape[0])], axis=1)
    return np.take_along_axis(per_seed, seed_picks, axis=1).mean(axis=1)


def per_seed_arrays(*values: Sequence[Sequence[float]]) -> list[np.ndarray]:
    arrays = [np.asarray(v, dtype=float) for v in values]
    if any(a.ndim != 2 or a.shape != arrays[0].shape or 0 in a.shape for a in arrays):
        raise ValueError("a two-level bootstrap needs seeds x examples arrays of one shape")
    return arrays


def seeds_mean(num: np.ndarray, den: np.ndarray) -> float:
    return float(np.mean([ratio(n, d) for n, d in zip(num, den, strict=True)]))


def two_level_bootstrap(num_a: Sequence[Sequence[float]], den_a: Sequence[Sequence[float]],
                        num_b: Sequence[Sequence[float]], den_b: Sequence[Sequence[float]],
                        samples: int = 10_000, seed: int = 0,
                        unit: str = "test examples") -> Comparison:
    """Retraining and the test sample together (Bouthillier et al. 2021): each draw resamples
    the seeds and the test examples with replacement, the same draw for both cells, and
    compares their seed-averaged metrics (what the cells are ranked by). A t-test over seeds
    ignores the test sample; a bootstrap over examples ignores retraining."""
    na, da, nb, db = per_seed_arrays(num_a, den_a, num_b, den_b)
    observed = seeds_mean(na, da) - seeds_mean(nb, db)
    if na.shape[1] < MIN_UNITS:
        return too_few(observed, na.shape[1], unit,
                       f"two-level bootstrap over {na.shape[0]} seeds and {na.shape[1]} {unit}")
    diffs = np.concatenate([seed_averaged(na, da, s, e) - seed_averaged(nb, db, s, e)
                            for s, e in seed_draws(*na.shape, samples, seed)])
    return Comparison(observed, two_sided(observed, diffs),
                      f"two-level bootstrap over {na.shape[0]} seeds and {na.shape[1]:,} {unit} "
                      f"({samples:,} draws)")


def two_level_interval(num: Sequence[Sequence[float]], den: Sequence[Sequence[float]],
                       level: float = 0.95, samples: int = 10_000, seed: int = 0
                       ) -> tuple[float, float]:
    """A percentile interval for one cell's seed-averaged metric over resampled seeds and test
    examples: where another set of seeds and another test sample could put it."""
    n, d = per_seed_arrays(num, den)
    metric = np.concatenate([seed_averaged(n, d, s, e) for s, e in seed_draws(*n.shape, samples,
                                                                              seed)])
    return holding(seeds_mean(n, d), metric, level)


def holding(estimate: float, metric: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of the resampled metric, widened where needed to hold the
    estimate itself: with few groups (a handful of test documents) every resample can fall on
    one side of it, and an interval beside its own point says nothing a reader can use."""
    low, high = np.quantile(metric, [(1 - level) / 2, (1 + level) / 2])
    return min(float(low), estimate), max(float(high), estimate)


def bootstrap_interval(num: Sequence[float], den: Sequence[float], level: float = 0.95,
                       samples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """A percentile interval for one cell's metric (sum num / sum den) over resampled test
    examples: how far a different test sample of the same size could move it."""
    x, y = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if x.size != y.size or x.size == 0:
        raise ValueError("a bootstrap interval needs equally many per-example values")
    metric = np.concatenate([resampled(x, y, d) for d in draws(x.size, samples, seed)])
    return holding(ratio(x, y), metric, level)


def p_value(p: float) -> str:
    """`p = 0.410`, `p = 0.0370`, `p = 0.0499`, `p < 0.001`: three significant digits, cut
    rather than rounded, so that a p-value below 0.05 never reads as 0.05; trailing zeros
    kept, so that p-values side by side read alike ("p = 0.530" beside "p = 0.372")."""
    if p < 0.001:
        return "p < 0.001"
    if p >= 1:
        return "p = 1"
    step = 10.0 ** (math.floor(math.log10(p)) - 2)
    shown = math.floor(p / step + 1e-9) * step
    return f"p = {shown:.{max(0, 2 - math.floor(math.log10(p)))}f}"


def seeds_needed(diff: float, sd_diff: float, alpha: float = 0.05, power: float = 0.8,
                 most: int = 1000) -> int | None:
    """How many seeds a paired t-test needs to find a true gap `diff` significant with
    probability `power`, when per-seed differences spread by `sd_diff` (noncentral t);
    None beyond `most`, or for no gap at all."""
    if diff == 0 or not math.isfinite(sd_diff):
        return None
    if sd_diff <= 0:
        return 2
    for n in range(2, most + 1):
        df, shift = n - 1, abs(diff) / (sd_diff / math.sqrt(n))
        critical = float(sps.t.ppf(1 - alpha / 2, df))
        if 1 - sps.nct.cdf(critical, df, shift) + sps.nct.cdf(-critical, df, shift) >= power:
            return n
    return None


def detectable_gap(sd_diff: float, n: int, alpha: float = 0.05, power: float = 0.8
                   ) -> float | None:
    """The smallest true gap a paired t-test over `n` seeds finds significant with probability
    `power`, when per-seed differences spread by `sd_diff` (noncentral t, solved by bisection);
    None below 2 seeds. What a "no significant change" is worth: it rules out only gaps well
    above this."""
    if n < 2 or not math.isfinite(sd_diff):
        return None
    if sd_diff <= 0:
        return 0.0
    df = n - 1
    critical = float(sps.t.ppf(1 - alpha / 2, df))

    def reach(gap: float) -> float:
        shift = gap / (sd_diff / math.sqrt(n))
        return 1 - sps.nct.cdf(critical, df, shift) + sps.nct.cdf(-critical, df, shift)

    low, high = 0.0, sd_diff
    while reach(high) < power:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if reach(mid) < power else (low, mid)
    return high


def plain_words(name_a: str, name_b: str, test: Comparison, alpha: float = 0.05,
                method: bool = True) -> str:
    """`GRU vs LSTM: +0.4 points, not significant (p = 0.410, paired t-test over 5 seeds)`."""
    sig = "significant" if test.p < alpha else "not significant"
    why = f", {test.method}" if method else ""
    return f"{name_a} vs {name_b}: {points(test.diff)} points, {sig} ({p_value(test.p)}{why})"


def points(diff: float) -> str:
    """A difference of fractions in percentage points, signed: `+1.7`, and `+0.04` rather
    than a `+0.0` that reads as no difference."""
    return f"{100 * diff:+.2f}" if 0 < abs(100 * diff) < 0.1 else f"{100 * diff:+.1f}"
