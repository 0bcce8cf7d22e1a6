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
# Words longer than this keep their first and last halves: prefixes and suffixes carry
# the spelling cues (capitals, -ing, -ly) that character features are for.
MAX_WORD_CHARS = 20

_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|[^\w\s]", re.UNICODE)
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    text = _HTML_BREAK.sub(" ", text)  # IMDB-style reviews carry <br /> line breaks
    return _TOKEN.findall(text.lower() if lowercase else text)


def text_tokens(text: str, lowercase: bool, max_length: int | None) -> list[str]:
    """A classification example's tokens, as prepare encodes them (and a trained model's
    predictions must)."""
    return tokenize(text, lowercase)[:max_length]


def word_tokens(words: list[str], lowercase: bool, max_length: int | None
                ) -> tuple[list[str], list[str]]:
    """A tagging example's words as kept (their characters keep their case) and the tokens
    the vocabulary looks up."""
    kept = words[:max_length]
    return kept, [w.lower() for w in kept] if lowercase else list(kept)


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


def spelling(word: str) -> list[str]:
    """The characters a word is spelled with, long words cut to MAX_WORD_CHARS."""
    half = MAX_WORD_CHARS // 2
    return list(word if len(word) <= MAX_WORD_CHARS else word[:half] + word[-half:])


def _flatten(rows: list[list[int]], dtype: torch.dtype = torch.int32
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length rows as one flat tensor plus offsets: row i is flat[off[i]:off[i+1]]."""
    offsets = torch.zeros(len(rows) + 1, dtype=torch.int64)
    torch.cumsum(torch.tensor([len(r) for r in rows], dtype=torch.int64), 0, out=offsets[1:])
    return torch.tensor([v for r in rows for v in r], dtype=dtype), offsets


def encode_split(token_lists: list[list[int]], labels: list[int] | None = None,
                 tags: list[list[int]] | None = None,
                 chars: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """Pack variable-length id lists into flat tensors plus offsets (compact, fast to load).

    `labels`: one class per sequence; `tags`: one class per token, flat like the ids;
    `chars`: the character ids of every token, in token order.
    """
    ids, offsets = _flatten(token_lists)
    blob = {"ids": ids, "offsets": offsets}
    if labels is not None:
        blob["labels"] = torch.tensor(labels, dtype=torch.int64)
    if tags is not None:
        blob["tags"] = _flatten(tags, torch.int64)[0]
    if chars is not None:
        blob["chars"], blob["char_offsets"] = _flatten(chars)
    return blob
