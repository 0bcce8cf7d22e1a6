"""Pretrained word vectors (GloVe / word2vec text format) aligned to a vocabulary."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from pipeline.config import SourceParams
from pipeline.data.archives import members
from pipeline.data.sources import cache_dir, source_from_params
from pipeline.data.text import Vocab
from pipeline.errors import fail


def _lines(artifact: Path, member: str | None) -> Iterator[tuple[str, IO[bytes]]]:
    if member is None:
        if artifact.is_dir():
            fail(f"{artifact}: a folder; set prepare.vectors.member to the vectors file")
        with open(artifact, "rb") as fh:
            yield str(artifact), fh
        return
    for name, fh in members(artifact):
        if name == member:
            yield f"{artifact}:{member}", fh
            return
    fail(f"{artifact}: no member {member!r} (prepare.vectors.member)")


def _text_lines(origin: str, fh: IO[bytes]) -> Iterator[tuple[int, str]]:
    """Numbered lines of a vectors file, which must be UTF-8 text (GloVe or word2vec's text
    format): a binary file is one line naming it, not a UnicodeDecodeError."""
    line_no = 0
    try:
        for line_no, raw in enumerate(io.TextIOWrapper(fh, encoding="utf-8", errors="strict",
                                                       newline=None), 1):
            yield line_no, raw
    except UnicodeDecodeError:
        fail(f"{origin}: not UTF-8 text after line {line_no}; prepare.vectors expects vectors "
             "in text form (GloVe, or word2vec saved as text), a word and its numbers per line")


def load_vectors(sp: SourceParams, vocab: Vocab, train_tokens: list[list[str]]
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Vectors for the vocabulary's words (exact match, else lowercased) and the coverage."""
    artifact = source_from_params(sp).fetch(cache_dir())
    wanted = {tok: i for i, tok in enumerate(vocab.itos) if i > 1}
    lowered: dict[str, list[int]] = {}
    for tok, i in wanted.items():
        lowered.setdefault(tok.lower(), []).append(i)
    rows: dict[int, list[float]] = {}
    dim = None
    for origin, fh in _lines(artifact, sp.member):
        for line_no, raw in _text_lines(origin, fh):
            parts = raw.rstrip().split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec text header: "<count> <dim>"
            if dim is None:
                dim = len(parts) - 1
            if len(parts) != dim + 1 or dim < 1:
                fail(f"{origin} line {line_no}: expected a word and {dim} numbers, "
                     f"got {len(parts) - 1} fields")
            word = parts[0]
            targets = [wanted[word]] if word in wanted else lowered.get(word.lower(), [])
            for i in targets:
                if i not in rows or word in wanted:  # an exact match beats a lowercased one
                    try:
                        rows[i] = [float(x) for x in parts[1:]]
                    except ValueError:
                        fail(f"{origin} line {line_no}: expected numbers after the word")
    if dim is None:
        fail(f"{artifact}: no vectors found")
    matrix = torch.zeros(len(vocab), dim)
    found = torch.zeros(len(vocab), dtype=torch.bool)
    for i, row in rows.items():
        matrix[i] = torch.tensor(row)
        found[i] = True
    covered_tokens = sum(1 for toks in train_tokens for t in toks if found[vocab.stoi.get(t, 1)])
    n_tokens = sum(len(toks) for toks in train_tokens)
    stats = {"source": source_from_params(sp).describe(), "dim": dim,
             "types_covered": len(rows), "types": len(vocab) - 2,
             "type_coverage": round(len(rows) / max(len(vocab) - 2, 1), 4),
             "train_token_coverage": round(covered_tokens / max(n_tokens, 1), 4)}
    return {"vectors": matrix, "found": found}, stats
