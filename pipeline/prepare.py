"""The download and prepare steps: raw examples in, encoded tensor splits and statistics out."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.config import DataParams, PrepareParams
from pipeline.datasets import get_dataset
from pipeline.errors import fail
from pipeline.files import atomic_dir, sha256_file, write_json
from pipeline.paths import SPLITS, Layout
from pipeline.sources import cache_dir, source_from_params
from pipeline.splits import grouped_split
from pipeline.text import UNK_ID, Vocab, encode_split, tokenize


def download(data: DataParams, layout: Layout) -> Path:
    """Fetch the dataset's pinned artifact (cached) and write its examples as JSON lines."""
    dataset = get_dataset(data.dataset)
    source = (dataset.source if data.source is None
              else source_from_params(**data.source.model_dump()))
    artifact = source.fetch(cache_dir())
    with atomic_dir(layout.raw) as out:
        n = 0
        with open(out / "examples.jsonl", "w", encoding="utf-8") as fh:
            for example in dataset.read(artifact):
                fh.write(json.dumps(example, ensure_ascii=False) + "\n")
                n += 1
        if n == 0:
            fail(f"{artifact}: no examples found in {dataset.name}")
        write_json(out / "source.json", {
            "dataset": dataset.name, "task": dataset.task, "source": source.describe(),
            "sha256": sha256_file(artifact), "examples": n, "licence": dataset.licence,
        })
    print(f"{dataset.name}: {n} examples -> {layout.raw}", file=sys.stderr)
    return layout.raw


def read_examples(path: Path) -> list[dict]:
    examples = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                ex = json.loads(line)
                if not isinstance(ex.get("text"), str) or "label" not in ex:
                    raise ValueError("expected an object with 'text' and 'label'")
            except (json.JSONDecodeError, ValueError, AttributeError) as err:
                fail(f"{path} line {line_no}: {err}")
            examples.append(ex)
    if not examples:
        fail(f"{path}: empty; run the download stage first")
    return examples


def _percentiles(lengths: list[int]) -> dict[str, int]:
    ordered = sorted(lengths)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"min": ordered[0], "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99),
            "max": ordered[-1]}


def prepare(data: DataParams, prep: PrepareParams, layout: Layout) -> Path:
    """Split by group, tokenize, build the vocabulary on train only, encode every split."""
    raw_file = layout.raw / "examples.jsonl"
    if not raw_file.exists():
        fail(f"{raw_file}: not found; run the download stage first")
    examples = read_examples(raw_file)
    if data.max_examples is not None and data.max_examples < len(examples):
        keep = sorted(random.Random(data.split_seed).sample(range(len(examples)),
                                                            data.max_examples))
        examples = [examples[i] for i in keep]

    index = grouped_split([str(ex.get("group", i)) for i, ex in enumerate(examples)],
                          data.val_fraction, data.test_fraction, data.split_seed)
    if not all(index[s] for s in SPLITS):
        fail(f"data: too few examples/groups ({len(examples)}) for a train/val/test split")

    tokens = [tokenize(ex["text"], prep.lowercase)[: prep.max_length]
              for ex in tqdm(examples, desc="tokenize", unit="ex", mininterval=1)]
    labels = sorted({str(ex["label"]) for ex in examples})
    label_id = {label: i for i, label in enumerate(labels)}
    vocab = Vocab.build((tokens[i] for i in index["train"]), prep.min_freq, prep.max_size)

    stats: dict = {"examples": len(examples), "vocab_size": len(vocab), "labels": labels,
                   "raw_sha256": sha256_file(raw_file), "splits": {}}
    with atomic_dir(layout.prepared) as out:
        for split in SPLITS:
            ids = [vocab.encode(tokens[i]) for i in index[split]]
            ys = [label_id[str(examples[i]["label"])] for i in index[split]]
            torch.save(encode_split(ids, ys), out / f"{split}.pt")
            n_tok = sum(len(x) for x in ids)
            stats["splits"][split] = {
                "examples": len(ids),
                "groups": len({examples[i].get("group") for i in index[split]}),
                "tokens": n_tok,
                "oov_rate": round(sum(x.count(UNK_ID) for x in ids) / max(n_tok, 1), 4),
                "label_counts": {lab: ys.count(j) for j, lab in enumerate(labels)},
                "length": _percentiles([len(x) for x in ids] or [0]),
            }
        vocab.save(out / "vocab.json")
        write_json(out / "labels.json", labels)
        write_json(out / "stats.json", stats)
    tr = stats["splits"]
    print(f"prepared {len(examples)} examples: train {tr['train']['examples']}, "
          f"val {tr['val']['examples']}, test {tr['test']['examples']}; vocab {len(vocab)}, "
          f"test OOV {tr['test']['oov_rate']:.1%}", file=sys.stderr)
    return layout.prepared
