"""Running text as a language model reads it: sentences in reading order, each closed by
<eos>, encoded as one stream of ids; and the split of Bengio et al. (2003) by word count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pipeline.data.text import Vocab

EOS = "<eos>"


@dataclass(frozen=True)
class Stream:
    """One split's text. `ids[0]` is <eos>, what the first sentence is predicted from (an
    n-gram's <s>); every later id is a target, predicted from all ids before it. Sentence k's
    targets are ids[ends[k-1] + 1 : ends[k] + 1]: its words and its <eos>, the tokens an
    n-gram scores for it too (words and </s>)."""

    ids: torch.Tensor  # int64 [targets + 1]
    ends: torch.Tensor  # int64 [sentences]: the number of targets up to each sentence's end
    groups: tuple[str, ...]  # each sentence's group (its document), for paired tests

    @property
    def targets(self) -> int:
        return len(self.ids) - 1

    def sentence_of_target(self) -> torch.Tensor:
        """[targets]: the sentence each target belongs to."""
        return torch.searchsorted(self.ends, torch.arange(self.targets), right=True)

    def sentences(self) -> list[list[int]]:
        """Each sentence's ids, without its <eos>: what an n-gram model reads."""
        starts = [0, *self.ends[:-1].tolist()]
        return [self.ids[a + 1 : b].tolist() for a, b in zip(starts, self.ends.tolist(),
                                                             strict=True)]


def with_eos(sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """The tokens a vocabulary is built from: each sentence's words and its <eos>."""
    return [[*s, EOS] for s in sentences]


def encode_stream(sentences: Sequence[Sequence[str]], vocab: Vocab,
                  groups: Sequence[str]) -> Stream:
    eos = vocab.stoi[EOS]
    ids, ends = [eos], []
    for sentence in sentences:
        ids += vocab.encode(list(sentence))
        ids.append(eos)
        ends.append(len(ids) - 1)
    return Stream(torch.tensor(ids, dtype=torch.int64), torch.tensor(ends, dtype=torch.int64),
                  tuple(groups))


def split_by_words(lengths: Sequence[int], train_words: int, val_words: int
                   ) -> dict[str, list[int]]:
    """Sentences in corpus order, split as Bengio et al. (2003) split Brown: training until
    `train_words` words are reached, validation until `val_words` more, test the rest. Each
    cut falls after the sentence that reaches its count, so no sentence is divided."""
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    words = {"train": 0, "val": 0, "test": 0}
    for i, n in enumerate(lengths):
        split = ("train" if words["train"] < train_words else
                 "val" if words["val"] < val_words else "test")
        out[split].append(i)
        words[split] += n
    return out
