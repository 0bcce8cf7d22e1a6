"""Running text as a language model reads it: sentences in reading order, each closed by
<eos>, encoded as one stream of ids; and the split of Bengio et al. (2003) by word count."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.config import DataParams, Family, PrepareParams
from pipeline.data.records import DataStats, SplitStats, write_stats
from pipeline.data.seen import Seen, write_seen
from pipeline.data.splits import _percentiles, group_key, grouped_split
from pipeline.data.text import UNK_ID, Vocab, word_tokens
from pipeline.errors import fail
from pipeline.files import atomic_dir, write_json
from pipeline.paths import SPLITS, TEST_EXAMPLES, VOCAB_FILE, Layout

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


def with_eos(sentences: Iterable[Sequence[str]]) -> list[list[str]]:
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


def sample_documents(examples: list[dict[str, Any]], max_words: int, seed: int
                     ) -> list[dict[str, Any]]:
    """Whole documents (groups) in a seeded order until `max_words` words are reached, kept
    in reading order: a smaller corpus that is still running text."""
    groups = list(dict.fromkeys(group_key(ex) for ex in examples))
    random.Random(seed).shuffle(groups)
    words = Counter()
    for ex in examples:
        words[group_key(ex)] += len(ex["tokens"])
    chosen, total = set(), 0
    for group in groups:
        if total >= max_words:
            break
        chosen.add(group)
        total += words[group]
    return [ex for ex in examples if group_key(ex) in chosen]


def save_stream(path: Path, stream: Stream) -> None:
    torch.save({"ids": stream.ids.int(), "ends": stream.ends, "groups": list(stream.groups)},
               path)


def load_stream(path: Path) -> Stream:
    try:
        blob = torch.load(path, weights_only=True)
        return Stream(blob["ids"].long(), blob["ends"], tuple(blob["groups"]))
    except (OSError, RuntimeError, KeyError, TypeError, AttributeError) as err:
        fail(f"{path}: not a prepared stream of text ({err}); run the prepare stage again")


def stream_stats(stream: Stream, sentences: list[list[str]], groups: int) -> SplitStats:
    targets = stream.ids[1:]
    return SplitStats(examples=len(sentences), groups=groups, tokens=stream.targets,
                      oov_rate=round(float((targets == UNK_ID).float().mean()), 4),
                      label_counts={}, length=_percentiles([len(s) for s in sentences]))


def prepare_corpus(examples: list[dict[str, Any]], data: DataParams, prep: PrepareParams,
                   layout: Layout, raw_sha256: str) -> DataStats:
    """Running text: sentences in reading order, split by document (or by word count), the
    vocabulary (with <eos>) from training only, one stream per split; written whole."""
    if data.max_words is not None:
        examples = sample_documents(examples, data.max_words, data.split_seed)
    sentences = [word_tokens(ex["tokens"], prep.lowercase, prep.max_length)[1]
                 for ex in examples]
    if data.word_split is not None:
        index = split_by_words([len(s) for s in sentences], data.word_split.train_words,
                               data.word_split.val_words)
    else:
        index = grouped_split([group_key(ex) for ex in examples], data.val_fraction,
                              data.test_fraction, data.split_seed)
    if empty := [s for s in SPLITS if not index[s]]:
        how = ("data.word_split's counts leave it no sentence" if data.word_split else
               "a document's split is a seeded hash of its name; add text, change "
               "data.val_fraction, test_fraction or data.split_seed")
        fail(f"data: the {empty[0]} split got no text of the {len(examples):,} sentences ({how})")
    vocab = Vocab.build(with_eos(sentences[i] for i in index["train"]), prep.min_freq,
                        prep.max_size)
    splits: dict[str, SplitStats] = {}
    targets: Counter[str] = Counter()
    with atomic_dir(layout.prepared) as out:
        for split in SPLITS:
            chosen = [sentences[i] for i in index[split]]
            groups = [group_key(examples[i]) for i in index[split]]
            stream = encode_stream(chosen, vocab, groups)
            if split == "train":
                targets = Counter(vocab.itos[i] for i in stream.ids[1:].tolist())
            save_stream(out / f"{split}.pt", stream)
            splits[split] = stream_stats(stream, chosen, len(set(groups)))
        with open(out / TEST_EXAMPLES, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(examples[i], ensure_ascii=False) + "\n"
                          for i in index["test"])
        vocab.save(out / VOCAB_FILE)
        write_json(out / "labels.json", [])
        learned = [examples[i] for s in ("train", "val") for i in index[s]]
        # a language model's labels are its next tokens: their training counts make the
        # unigram a retraining round asks the model to beat
        write_seen(out, Seen.of(learned, learned, dict(targets)))
        stats = DataStats(family=Family.LANGUAGE_MODEL, examples=len(examples),
                          vocab_size=len(vocab), labels=[], raw_sha256=raw_sha256,
                          splits=splits)
        write_stats(out, stats)
    sp = stats.splits
    print(f"prepared {len(examples):,} sentences of running text: train "
          f"{sp['train'].tokens:,} tokens, val {sp['val'].tokens:,}, test {sp['test'].tokens:,} "
          f"(words and sentence ends); vocab {len(vocab):,}, test OOV {sp['test'].oov_rate:.1%}",
          file=sys.stderr)
    return stats
