"""Reproducible train/validation/test splits that never cut a group (e.g. a movie) in two."""

from __future__ import annotations

import random
from collections import defaultdict


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
