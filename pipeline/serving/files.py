"""What `rnnbench predict` reads and writes: texts from the command line or a file (one per
line, JSON lines, or the task's own CSV / CoNLL / CoNLL-U format), predictions as CSV or JSON
lines."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from pipeline.config import ReaderParams
from pipeline.data.readers import read_conll, read_conllu
from pipeline.errors import fail
from pipeline.files import atomic_file, decode_utf8

Example = dict[str, Any]


def read_inputs(path: Path, reader: ReaderParams) -> list[Example]:
    """Examples by the file's suffix: .jsonl (objects with "text" or "tokens"), .csv (the
    column data.reader.text_column names), .conll, .conllu; anything else one text a line."""
    if not path.is_file():
        fail(f"--input {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".conll":
        return [{"tokens": ex["tokens"]} for ex in read_conll(path, reader)]
    if suffix == ".conllu":
        return [{"tokens": ex["tokens"]} for ex in read_conllu(path, reader)]
    text = decode_utf8(path.read_bytes(), str(path))
    if suffix == ".csv":
        rows = csv.DictReader(text.splitlines())
        if reader.text_column not in (rows.fieldnames or []):
            fail(f"{path}: no column {reader.text_column!r} (data.reader.text_column); "
                 f"columns are {rows.fieldnames}")
        return [{"text": row[reader.text_column] or ""} for row in rows]
    lines = text.splitlines()
    say_skipped(path, [n for n, line in enumerate(lines, start=1) if not line.strip()])
    if suffix in (".jsonl", ".json"):
        out = []
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
            except json.JSONDecodeError as err:
                fail(f"{path} line {line_no}: not JSON ({err.msg})")
            if not isinstance(ex, dict) or not ({"text", "tokens"} & ex.keys()):
                fail(f"{path} line {line_no}: expected an object with 'text' or 'tokens'")
            out.append({k: ex[k] for k in ("text", "tokens") if k in ex})
        return out
    return [{"text": line} for line in lines if line.strip()]


def say_skipped(path: Path, blank: list[int]) -> None:
    """Blank lines are no texts, and are skipped; saying which keeps the predictions (one per
    remaining line, in order) traceable to the file's lines."""
    if blank:
        shown = ", ".join(map(str, blank[:10])) + (" ..." if len(blank) > 10 else "")
        print(f"{path}: {len(blank)} blank line(s) skipped (line {shown}); one prediction per "
              "remaining line, in order", file=sys.stderr)


def _csv_rows(inputs: list[Example], preds: list[Example]) -> Iterable[list[Any]]:
    if preds and "perplexity" in preds[0]:  # a language model's scores, a row per text
        keys = list(preds[0])
        yield ["text", *keys]
        for ex, p in zip(inputs, preds, strict=True):
            yield [ex.get("text", " ".join(ex.get("tokens", []))), *(p[k] for k in keys)]
    elif preds and "label" in preds[0]:
        labels = list(preds[0]["probabilities"])
        yield ["text", "label", *(f"p_{label}" for label in labels)]
        for ex, p in zip(inputs, preds, strict=True):
            yield [ex.get("text", ""), p["label"], *(p["probabilities"][k] for k in labels)]
    else:
        yield ["example", "token", "tag"]
        for i, p in enumerate(preds):
            yield from ([i, token, tag] for token, tag in zip(p["tokens"], p["tags"],
                                                              strict=True))


def write_predictions(inputs: list[Example], preds: list[Example], output: Path | None) -> None:
    """CSV where `output` ends in .csv (a row per text, or per token), else JSON lines; to
    standard output without `output`."""

    def write(fh: TextIO, as_csv: bool) -> None:
        if as_csv:
            csv.writer(fh).writerows(_csv_rows(inputs, preds))
        else:
            fh.writelines(json.dumps({**ex, **p}, ensure_ascii=False) + "\n"
                          for ex, p in zip(inputs, preds, strict=True))

    if output is None:
        write(sys.stdout, as_csv=False)
        return
    with atomic_file(output) as fh:
        write(fh, as_csv=output.suffix.lower() == ".csv")
