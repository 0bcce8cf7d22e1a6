"""Tokenization, vocabulary and encoding, in plain Python.

torchtext no longer loads with current torch. A compiled regex over lowercased text measured
faster here than Hugging Face `tokenizers` WordLevel (benchmarks/tokenize.py), so the tokenizer
is a regex: words with inner apostrophes and hyphens, numbers, and single punctuation marks.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

from pipeline.errors import fail
from pipeline.files import atomic_file

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|[^\w\s]", re.UNICODE)
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    text = _HTML_BREAK.sub(" ", text)  # IMDB-style reviews carry <br /> line breaks
    return _TOKEN.findall(text.lower() if lowercase else text)


class Vocab:
    """Token <-> id mapping; id 0 is padding, id 1 stands for every unknown token."""

    def __init__(self, itos: list[str]):
        if itos[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD}, {UNK}")
        self.itos = itos
        self.stoi = {tok: i for i, tok in enumerate(itos)}

    @classmethod
    def build(
        cls, texts: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Most frequent tokens first (ties alphabetical, so the order is reproducible)."""
        counts = Counter(tok for toks in texts for tok in toks)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq),
                        key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        get = self.stoi.get
        return [get(tok, UNK_ID) for tok in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def save(self, path: Path) -> None:
        with atomic_file(path) as fh:
            json.dump(self.itos, fh, ensure_ascii=False)

    @classmethod
    def load(cls, path: Path) -> Vocab:
        try:
            itos = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            fail(f"{path}: cannot read vocabulary: {err}")
        if not isinstance(itos, list) or itos[:2] != [PAD, UNK]:
            fail(f"{path}: expected a JSON list starting with {PAD!r}, {UNK!r}")
        return cls(itos)


def encode_split(token_lists: list[list[int]], labels: list[int] | None = None,
                 tags: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """Pack variable-length id lists into one flat tensor plus offsets (compact, fast to load).

    `labels`: one class per sequence; `tags`: one class per token, flat like the ids.
    """
    lengths = torch.tensor([len(ids) for ids in token_lists], dtype=torch.int64)
    offsets = torch.zeros(len(token_lists) + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    blob = {"ids": torch.tensor([i for ids in token_lists for i in ids], dtype=torch.int32),
            "offsets": offsets}
    if labels is not None:
        blob["labels"] = torch.tensor(labels, dtype=torch.int64)
    if tags is not None:
        blob["tags"] = torch.tensor([t for row in tags for t in row], dtype=torch.int64)
    return blob
