"""Reproducible train/validation/test splits that never cut a group (e.g. a movie) in two, and
what stats.json says of each split."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from pipeline.data.records import SplitStats
from pipeline.data.text import UNK_ID


def grouped_split(
    groups: list[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Assign whole groups to test, then validation, then train, in a seeded random order.

    Returns example indices per split. Fractions are of examples, met as closely as whole
    groups allow; the same inputs always give the same split.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    order = sorted(members)
    random.Random(seed).shuffle(order)

    n = len(groups)
    targets = {"test": test_fraction * n, "val": val_fraction * n}
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for group in order:
        idx = members[group]
        name = next(
            (s for s in ("test", "val") if len(splits[s]) + len(idx) / 2 <= targets[s]), "train"
        )
        splits[name].extend(idx)
    for idx in splits.values():
        idx.sort()
    return splits


def _percentiles(lengths: list[int]) -> dict[str, int]:
    ordered = sorted(lengths) or [0]
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"min": ordered[0], "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99),
            "max": ordered[-1]}


def split_stats(ids: list[list[int]], targets: list[list[int]], labels: list[str],
                groups: int) -> SplitStats:
    """What stats.json says of one encoded split: sizes, OOV rate, label counts, lengths."""
    n_tok = sum(len(x) for x in ids)
    counts = Counter(y for row in targets for y in row)
    return SplitStats(
        examples=len(ids), groups=groups, tokens=n_tok,
        oov_rate=round(sum(x.count(UNK_ID) for x in ids) / max(n_tok, 1), 4),
        label_counts={lab: counts[j] for j, lab in enumerate(labels)},
        length=_percentiles([len(x) for x in ids]))
