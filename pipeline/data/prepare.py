"""The download and prepare steps: raw examples in, encoded tensor splits and statistics out."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pipeline.config import DataParams, Family, PrepareParams
from pipeline.data.catalog import get_dataset
from pipeline.data.corpus import prepare_corpus
from pipeline.data.duplicates import duplicates_warning, keep_copies_together
from pipeline.data.records import (
    DataStats,
    SourceRecord,
    SplitStats,
    read_source,
    read_stats,
    write_source,
    write_stats,
)
from pipeline.data.seen import Seen, write_seen
from pipeline.data.sources import Source, cache_dir, digest_of, source_from_params
from pipeline.data.splits import group_key, grouped_split, split_stats
from pipeline.data.text import Vocab, encode_split, spelling, text_tokens, word_tokens
from pipeline.data.vectors import load_vectors
from pipeline.errors import fail
from pipeline.files import atomic_dir, file_digest, write_json
from pipeline.paths import SPLITS, TEST_EXAMPLES, Layout


def task_source(data: DataParams) -> Source:
    """Where a task's data comes from: its `data.source`, else the catalog's pinned one."""
    dataset = get_dataset(data.dataset)
    if data.source is not None:
        return source_from_params(data.source)
    if dataset.source is None:
        fail(f"data.source: dataset {dataset.name!r} reads your own file; set data.source to "
             "{kind: local, path: FILE} or {kind: url, url: URL, sha256: HASH}")
    return dataset.source


def download(data: DataParams, layout: Layout) -> Path:
    """Fetch the dataset's artifact (pinned ones verified and cached) and write its examples as
    JSON lines."""
    dataset = get_dataset(data.dataset)
    source = task_source(data)
    artifact = source.fetch(cache_dir())
    with atomic_dir(layout.raw) as out:
        n = 0
        with open(out / "examples.jsonl", "w", encoding="utf-8") as fh:
            for example in dataset.read(artifact, data.reader):
                fh.write(json.dumps(example, ensure_ascii=False) + "\n")
                n += 1
        if n == 0:
            fail(f"{artifact}: no examples found for {dataset.name}")
        write_source(out, SourceRecord(
            dataset=dataset.name, family=dataset.family, source=source.describe(),
            sha256=digest_of(artifact), examples=n, licence=dataset.licence,
            splits=dataset.splits))
    print(f"{dataset.name}: {n} examples -> {layout.raw}", file=sys.stderr)
    return layout.raw


def read_examples(path: Path, family: Family) -> list[dict[str, Any]]:
    examples = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                ex = json.loads(line)
                if family == Family.CLASSIFICATION:
                    ok = isinstance(ex.get("text"), str) and "label" in ex
                    expected = "an object with 'text' and 'label'"
                elif family == Family.LANGUAGE_MODEL:
                    ok = isinstance(ex.get("tokens"), list) and len(ex["tokens"]) > 0
                    expected = "an object with a non-empty list of 'tokens'"
                else:
                    ok = (isinstance(ex.get("tokens"), list) and isinstance(ex.get("tags"), list)
                          and len(ex["tokens"]) == len(ex["tags"]) > 0)
                    expected = "an object with equally long 'tokens' and 'tags'"
                if not ok:
                    raise ValueError(f"expected {expected}")
            except (json.JSONDecodeError, ValueError, AttributeError) as err:
                fail(f"{path} line {line_no}: {err}")
            examples.append(ex)
    if not examples:
        fail(f"{path}: empty; run the download stage first")
    return examples


def read_test_examples(prepared: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The test split's examples as prepare read them (the first `limit`), in split order."""
    family = read_stats(prepared).family
    path = prepared / TEST_EXAMPLES
    if not path.is_file():
        fail(f"{path}: not found; run the prepare stage again (`dvc repro`)")
    return read_examples(path, family)[:limit]


def split_examples(examples: list[dict[str, Any]], data: DataParams) -> dict[str, list[int]]:
    """Given test splits are kept; everything else is split by group, seeded."""
    groups = [group_key(ex) for ex in examples]
    if any(ex.get("split") == "test" for ex in examples):
        pool = [i for i, ex in enumerate(examples) if ex.get("split") != "test"]
        inner = grouped_split([groups[i] for i in pool], data.val_fraction, 0.0,
                              data.split_seed)
        return {"train": [pool[i] for i in inner["train"]], "val": [pool[i] for i in inner["val"]],
                "test": [i for i, ex in enumerate(examples) if ex.get("split") == "test"]}
    return grouped_split(groups, data.val_fraction, data.test_fraction, data.split_seed)


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{label!r} {n:,}" for label, n in counts.most_common())


def require_two_labels(train: Counter[str], everywhere: Counter[str]) -> None:
    """Refuse a training split with a single label: every cell would score 100% by predicting
    it, which compares nothing."""
    if len(train) < 2:
        fail(f"data: the training split holds {len(train)} label ({_counts(train)}); comparing "
             f"cells needs at least two (the whole dataset: {_counts(everywhere)}); check "
             "data.reader.label_column (csv) or the tag column")


def _named(labels: list[str], most: int = 5) -> str:
    """'a', 'b' and 7 more: a list that stays one readable line however many labels."""
    shown = ", ".join(map(repr, labels[:most]))
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")


def held_out_warnings(counts: dict[str, Counter[str]], labels: list[str]) -> list[str]:
    """One line per held-out split about the labels it lacks, or holds without the training
    split having them (printed, and shown in the report). A split none of whose labels occurs
    in training is refused: no model could get a single one of its examples right."""
    out = []
    for split in ("val", "test"):
        held = counts[split]
        unseen = [lab for lab in labels if held[lab] and not counts["train"][lab]]
        if unseen and len(unseen) == len(held):
            fail(f"data: no label of the {split} split ({_named(unseen)}) occurs in the "
                 f"training split ({_named(sorted(counts['train']))}); nothing could be "
                 "evaluated: check the label column, or how the data is split")
        if unseen:
            n = sum(held[lab] for lab in unseen)
            out.append(f"the {split} split holds {_named(unseen)} ({n:,} of its "
                       f"{held.total():,} labels) which training never shows: no model can "
                       "predict them")
        absent = [lab for lab in labels if not held[lab]]
        if absent:
            out.append(f"the {split} split holds no {_named(absent)} (of {len(labels)} "
                       f"labels); its scores say nothing about "
                       f"{'them' if len(absent) > 1 else 'it'}")
    return out


def drop_empty(examples: list[dict[str, Any]], tokens: list[list[str]]
               ) -> tuple[list[dict[str, Any]], list[list[str]], list[str]]:
    """The examples whose text has at least one token (an empty text would train and test as
    a lone <unk>), and where each dropped one was (its file line, else its position)."""
    keep = [i for i, toks in enumerate(tokens) if toks]
    dropped = [f"line {ex['line']}" if "line" in ex else f"example {i + 1}"
               for i, ex in enumerate(examples) if not tokens[i]]
    return [examples[i] for i in keep], [tokens[i] for i in keep], dropped


def prepare(data: DataParams, prep: PrepareParams, layout: Layout) -> Path:
    """Split by group, tokenize, build the vocabulary on train only, encode every split."""
    raw_file = layout.raw / "examples.jsonl"
    if not raw_file.exists():
        fail(f"{raw_file}: not found; run the download stage first")
    family = read_source(layout.raw).family
    examples = read_examples(raw_file, family)
    if family == Family.LANGUAGE_MODEL:
        prepare_corpus(examples, data, prep, layout, file_digest(raw_file))
        return layout.prepared
    if data.max_examples is not None and data.max_examples < len(examples):
        keep = sorted(random.Random(data.split_seed).sample(range(len(examples)),
                                                            data.max_examples))
        examples = [examples[i] for i in keep]
    dropped: list[str] = []
    if family == Family.CLASSIFICATION:
        tokens = [text_tokens(ex["text"], prep.lowercase, prep.max_length)
                  for ex in tqdm(examples, desc="tokenize", unit="ex", mininterval=1)]
        examples, tokens, dropped = drop_empty(examples, tokens)
        targets = [[str(ex["label"])] for ex in examples]
    else:  # tagging: the data's own tokens, one tag each
        words, tokens = map(list, zip(*(word_tokens(ex["tokens"], prep.lowercase,
                                                    prep.max_length) for ex in examples),
                                      strict=True))
        targets = [[str(t) for t in ex["tags"]][: prep.max_length] for ex in examples]
    by_group = split_examples(examples, data)
    index, duplicates = keep_copies_together(
        by_group, examples, fixed_test=any(ex.get("split") == "test" for ex in examples))
    if empty := [s for s in SPLITS if not index[s]]:
        fail(f"data: the {empty[0]} split got none of the {len(set(map(group_key, examples)))} "
             "groups (a group's split is a seeded hash of its name; data.val_fraction and "
             "test_fraction say how often each split comes up); add data, change those "
             "fractions or data.split_seed")
    # Characters keep their case: capitals are what marks names and sentence starts.
    char_vocab = (Vocab.build(spelling(w) for i in index["train"] for w in words[i])
                  if family == Family.TAGGING else None)
    everywhere = Counter(y for ys in targets for y in ys)
    labels = sorted(everywhere)
    counts = {s: Counter(y for i in index[s] for y in targets[i]) for s in SPLITS}
    require_two_labels(counts["train"], everywhere)
    warnings = held_out_warnings(counts, labels)
    if (copies := duplicates_warning(duplicates, len(examples))) is not None:
        warnings.append(copies)
    if dropped:
        warnings.insert(0, f"{len(dropped):,} of {len(examples) + len(dropped):,} examples "
                           f"dropped: their text has no token ({', '.join(dropped[:10])}"
                           f"{' ...' if len(dropped) > 10 else ''})")
    label_id = {label: i for i, label in enumerate(labels)}
    vocab = Vocab.build((tokens[i] for i in index["train"]), prep.min_freq, prep.max_size)

    splits: dict[str, SplitStats] = {}
    optional: dict[str, Any] = {"dropped_empty": len(dropped)} \
        if family == Family.CLASSIFICATION else {}
    with atomic_dir(layout.prepared) as out:
        for split in SPLITS:
            ids = [vocab.encode(tokens[i]) for i in index[split]]
            ys = [[label_id[y] for y in targets[i]] for i in index[split]]
            blob = (encode_split(ids, [y[0] for y in ys]) if family == Family.CLASSIFICATION
                    else encode_split(ids, tags=ys, chars=[
                        char_vocab.encode(spelling(w)) for i in index[split] for w in words[i]]))
            torch.save(blob, out / f"{split}.pt")
            groups = len({group_key(examples[i]) for i in index[split]})
            splits[split] = split_stats(ids, ys, labels, groups)
        if prep.vectors is not None:
            blob, optional["vectors"] = load_vectors(prep.vectors, vocab,
                                                     [tokens[i] for i in index["train"]])
            torch.save(blob, out / "vectors.pt")
        # The test examples as they were read: what a model from another round of data is
        # re-scored on (it has a vocabulary of its own), and what `predict` is checked against.
        with open(out / TEST_EXAMPLES, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(examples[i], ensure_ascii=False) + "\n"
                          for i in index["test"])
        vocab.save(out / "vocab.json")
        if char_vocab is not None:
            char_vocab.save(out / "chars.json")
        write_json(out / "labels.json", labels)
        learned = ("train", "val")
        write_seen(out, Seen.of([examples[i] for s in learned for i in index[s]],
                                # groups as split, before copies moved: a line such as "2 ."
                                # moved into training does not make its document seen
                                [examples[i] for s in learned for i in by_group[s]],
                                dict(counts["train"])))
        stats = DataStats(family=family, examples=len(examples), vocab_size=len(vocab),
                          labels=labels, raw_sha256=file_digest(raw_file), splits=splits,
                          warnings=warnings, duplicates=duplicates, **optional)
        write_stats(out, stats)
    sp = stats.splits
    print(f"prepared {len(examples)} {family} examples: train {sp['train'].examples}, "
          f"val {sp['val'].examples}, test {sp['test'].examples}; vocab {len(vocab)}, "
          f"{len(labels)} labels, test OOV {sp['test'].oov_rate:.1%}; "
          f"{duplicates.exact + duplicates.normalised} repeated texts, {duplicates.moved} moved "
          "to their first copy's split", file=sys.stderr)
    for warning in stats.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if (v := stats.vectors) is not None:
        print(f"vectors: {v.dim}-d, {v.type_coverage:.1%} of the vocabulary, "
              f"{v.train_token_coverage:.1%} of training tokens", file=sys.stderr)
    return layout.prepared
