"""Texts that occur more than once: found exactly and after normalising, and kept in one split,
so that no test example is a copy of a training one (Gorman & Bedrick 2019 on splits).

A split keeps groups (a movie, a document, a tweet) whole, but the same text can sit in two
groups: WNUT-16 holds retweets of one tweet, Brown repeats short lines such as "2 .", a CSV may
hold a row twice. Merging the groups of such copies would chain whole Brown documents together
through a shared ")"; moving the copies themselves is enough, and cuts no group but by a text
another group already holds.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pipeline.data.records import Duplicates

URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
MENTION = re.compile(r"@\w+")
WARN_SHARE = 0.02  # more copies than this share of the examples gets a warning


def text_of(example: dict[str, Any]) -> str:
    """The example's text: its string, or its tokens joined by single spaces."""
    return example["text"] if "text" in example else " ".join(example["tokens"])


def normalised(text: str) -> str:
    """The text with case, spacing, URLs and @mentions ignored (tweets differ in these alone:
    the same retweet from two accounts, a link shortened twice)."""
    return " ".join(MENTION.sub("@user", URL.sub("<url>", text)).lower().split())


def keep_copies_together(index: dict[str, list[int]], examples: list[dict[str, Any]],
                         fixed_test: bool) -> tuple[dict[str, list[int]], Duplicates]:
    """Move every copy of a text (normalised) to the split of its first copy in file order; with
    a test split the data gave (`fixed_test`), copies of a test text are dropped from training
    and validation instead, the test split staying as published."""
    texts = [text_of(ex) for ex in examples]
    keys = [normalised(t) for t in texts]
    split_of = {i: s for s, members in index.items() for i in members}
    home: dict[str, str] = {}
    for i in sorted(split_of):
        home.setdefault(keys[i], split_of[i])
    if fixed_test:
        home.update({keys[i]: "test" for i in index["test"]})
    moved = dropped = 0
    out: dict[str, list[int]] = {s: [] for s in index}
    for i in sorted(split_of):
        target = home[keys[i]]
        if target == split_of[i]:
            out[target].append(i)
        elif fixed_test and target == "test":
            dropped += 1
        else:
            out[target].append(i)
            moved += 1
    in_splits = sorted(split_of)
    exact = len(in_splits) - len({texts[i] for i in in_splits})
    copies = len(in_splits) - len({keys[i] for i in in_splits})
    most = Counter(keys[i] for i in in_splits).most_common(1)
    return out, Duplicates(exact=exact, normalised=copies - exact, moved=moved, dropped=dropped,
                           most_copies=most[0][1] if most else 0)


def duplicates_warning(d: Duplicates, examples: int) -> str | None:
    """A line for stats.json's warnings when copies are many: the scores then weigh some texts
    several times, and the user should know."""
    copies = d.exact + d.normalised
    if copies <= WARN_SHARE * examples:
        return None
    return (f"{copies:,} of {examples:,} examples ({copies / examples:.1%}) repeat another "
            f"example's text ({d.exact:,} exactly, {d.normalised:,} more once case, spacing, "
            f"URLs and @mentions are ignored; up to {d.most_copies} copies of one text); "
            f"each text's copies are kept in one split ({d.moved:,} moved"
            + (f", {d.dropped:,} dropped from training as copies of test examples" if d.dropped
               else "") + ")")
