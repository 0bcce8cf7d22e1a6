"""Train/validation/test splits that never cut a group (e.g. a movie) in two and never move one:
each group's split is a seeded hash of its key alone, so data that grows (a retraining round's
new movies) adds groups to every split in proportion and leaves every old group where it was.
A shuffle of all groups, as before, moved old training movies into the next round's test split,
where the champion that had trained on them was scored on them. Also what stats.json says of
each split."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from typing import Any

from pipeline.data.duplicates import text_of
from pipeline.data.records import SplitStats
from pipeline.data.text import UNK_ID


def group_key(example: dict[str, Any]) -> str:
    """The name of the example's group: its `group`, or its own text where it has none (not its
    position, which changes when rows are added above it)."""
    return str(example["group"]) if "group" in example else f"text:{text_of(example)}"


def split_of_group(key: str, val_fraction: float, test_fraction: float, seed: int) -> str:
    """`test`, `val` or `train` for the group named `key`: a point in [0, 1) drawn from a hash of
    the seed and the key (the same on every machine and Python, unlike `hash()`)."""
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64
    return ("test" if point < test_fraction else
            "val" if point < test_fraction + val_fraction else "train")


def grouped_split(
    groups: list[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Example indices per split, every example of a group in its group's split. Fractions are
    of groups, so of examples on average; a split holds them exactly only as groups grow many."""
    splits: dict[str, list[int]] = defaultdict(list)
    home: dict[str, str] = {}
    for i, group in enumerate(groups):
        if group not in home:
            home[group] = split_of_group(group, val_fraction, test_fraction, seed)
        splits[home[group]].append(i)
    return {name: splits[name] for name in ("train", "val", "test")}


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
