"""What a model learned from, carried in its folder (`seen.json`), so that whoever judges it
later never scores it on an example it saw: a retraining round compares a champion trained on
last month's data with a challenger trained on this month's, on test examples new to both.

Examples are kept as short digests of their normalised text (the duplicates' key: a copy that
differs in case or a URL is the same example), and of their group where they have one (a film
whose other reviews were trained on is not new). With them, the training split's label counts:
the majority baseline a model must beat to count as having learned anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from pipeline.config.records import read_model, write_model
from pipeline.data.duplicates import normalised, text_of

SEEN_FILE = "seen.json"


def digest(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=8).hexdigest()


class Seen(BaseModel):
    """The training and validation examples of one model (validation picked its epoch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    texts: list[str]  # digests of normalised texts, sorted
    groups: list[str]  # digests of the `group` of those that have one, sorted
    train_label_counts: dict[str, int]  # labels (tags, for taggers) of the training split
    _text_set: frozenset[str] = PrivateAttr(frozenset())
    _group_set: frozenset[str] = PrivateAttr(frozenset())

    def model_post_init(self, context: Any) -> None:
        self._text_set, self._group_set = frozenset(self.texts), frozenset(self.groups)

    @classmethod
    def of(cls, examples: Iterable[dict[str, Any]], in_groups: Iterable[dict[str, Any]],
           train_label_counts: dict[str, int]) -> Seen:
        """`examples`: what was trained and validated on; `in_groups`: the examples whose
        group was split into training or validation (their groups count as seen)."""
        return cls(texts=sorted({digest(normalised(text_of(ex))) for ex in examples}),
                   groups=sorted({digest(str(ex["group"])) for ex in in_groups
                                  if "group" in ex}),
                   train_label_counts=train_label_counts)

    def saw(self, example: dict[str, Any]) -> bool:
        """Whether the example, or another of its group, is one this model learned from."""
        return (digest(normalised(text_of(example))) in self._text_set
                or ("group" in example and digest(str(example["group"])) in self._group_set))

    def majority_label(self) -> str:
        """The most frequent training label (the first of the tied, in sorted order)."""
        return min(self.train_label_counts, key=lambda k: (-self.train_label_counts[k], k))


def write_seen(folder: Path, seen: Seen) -> None:
    write_model(folder / SEEN_FILE, seen)


def read_seen(folder: Path) -> Seen | None:
    """The model's record of what it saw; None for a model trained before rnnbench kept one."""
    path = folder / SEEN_FILE
    return read_model(Seen, path, "retrain the model") if path.is_file() else None
