"""The classical answers every cell's perplexity stands next to, on the same tokens and
vocabulary: a unigram model, and modified Kneser-Ney n-grams estimated by KenLM's `lmplz`
(Heafield et al. 2013) and scored here by the back-off rule of KenLM's query. Reading the
ARPA file once for the n-grams a test split can use is faster than loading all of it into
KenLM's compiled module, which no wheel ships (it took 66 s of every fresh environment to
build); tests/test_lm.py checks the scores against that module.

NLTK's `nltk.lm.KneserNeyInterpolated`, the pure-Python alternative, scored 42 ms per token
after fitting 100,000 Brown words here (its continuation counts scan the n-gram table on
every query) and gives unseen words probability zero: hours for a test split. `lmplz` fits
800,000 words at order 5 in 3 s (docs/language_model.md).

Sentences go to KenLM as their vocabulary ids, written as numbers: the n-gram then reads
exactly the neural models' tokens (`<unk>` included, which lmplz refuses to read as a word),
and scores each sentence's words and its end, as the neural models do."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pipeline.data.text import PAD_ID
from pipeline.errors import fail
from pipeline.scoring.perplexity import LogLoss, Unigram

LN10 = math.log(10)
BUILD_HINT = ("`make env` builds it into .venv/bin from KenLM's pinned source; it needs CMake "
              "and Boost (Debian: cmake libboost-program-options-dev libboost-system-dev "
              "libboost-thread-dev libboost-test-dev)")


def lmplz() -> str:
    """KenLM's estimator: on PATH, else beside this environment's Python (where make puts
    it)."""
    found = shutil.which("lmplz") or shutil.which("lmplz", path=str(Path(sys.executable).parent))
    if found is None:
        fail(f"lmplz: KenLM's n-gram estimator is not on PATH; {BUILD_HINT}")
    return found


def as_text(sentences: Sequence[Sequence[int]]) -> str:
    return "".join(" ".join(map(str, s)) + "\n" for s in sentences)


def fit_kneser_ney(sentences: Sequence[Sequence[int]], order: int, arpa: Path,
                   memory: str = "512M") -> None:
    """An interpolated modified Kneser-Ney model of `order` (lmplz's defaults), as ARPA.
    Where a corpus is too small to estimate the discounts (a count-of-counts is zero),
    lmplz's fallback discounts (0.5, 1, 1.5) are used, as its --discount_fallback says."""
    with tempfile.TemporaryDirectory(prefix="rnnbench-lmplz-") as scratch:
        done = subprocess.run(
            [lmplz(), "-o", str(order), "-S", memory, "-T", scratch, "--discount_fallback",
             "--arpa", str(arpa)], input=as_text(sentences), text=True, capture_output=True,
            check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        fail(f"lmplz -o {order}: failed ({last})")


def sentence_nats(arpa: Path, sentences: Sequence[Sequence[int]]) -> list[float]:
    """Each sentence's negative log-likelihood in nats under the ARPA model: its words and
    its end, from <s>, by the back-off rule KenLM's own query applies (tests/test_lm.py
    compares the two)."""
    order = order_of(arpa)
    keys = [ngram_keys(sentence, order) for sentence in sentences]
    wanted = {"<s>", "<unk>"} | {ngram for sentence in keys for pos in sentence for ngram in pos}
    probs, backoffs = read_arpa(arpa, wanted)
    return [-sum(log10_prob(pos, probs, backoffs) for pos in sentence) * LN10
            for sentence in keys]


def order_of(arpa: Path) -> int:
    """The highest order an ARPA file's header counts."""
    order = 0
    with arpa.open() as lines:
        for line in lines:
            if line.startswith("ngram "):
                order = int(line.split()[1].split("=")[0])
            elif line.startswith("\\1-grams:"):
                return order
    fail(f"{arpa}: not an ARPA file (no \\1-grams: section)")


def ngram_keys(sentence: Sequence[int], order: int) -> list[list[str]]:
    """For each word of the sentence and its end, the n-grams that may score it, longest
    first: the word after the last order-1 tokens, then after fewer, down to the word alone;
    each as the space-joined words an ARPA line names."""
    tokens = ["<s>", *map(str, sentence), "</s>"]
    return [[" ".join(tokens[start:i + 1]) for start in range(max(0, i - order + 1), i + 1)]
            for i in range(1, len(tokens))]


def read_arpa(arpa: Path, wanted: set[str]) -> tuple[dict[str, float], dict[str, float]]:
    """The log10 probabilities and back-offs of the n-grams in `wanted`, read in one pass:
    an order-5 model of 800,000 words holds millions of n-grams, a test split needs few."""
    probs: dict[str, float] = {}
    backoffs: dict[str, float] = {}
    with arpa.open() as lines:
        for line in lines:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2 or fields[1] not in wanted:
                continue
            probs[fields[1]] = float(fields[0])
            if len(fields) == 3:
                backoffs[fields[1]] = float(fields[2])
    return probs, backoffs


def log10_prob(candidates: list[str], probs: dict[str, float],
               backoffs: dict[str, float]) -> float:
    """log10 p(word | context) of an interpolated back-off model: the longest n-gram the
    model holds, plus the back-off weight of each longer context it does not (0 for a
    context it lacks); a word it never saw scores as <unk>."""
    penalty = 0.0
    for ngram in candidates:
        if ngram in probs:
            return probs[ngram] + penalty
        context = ngram.rpartition(" ")[0]
        penalty += backoffs.get(context, 0.0)
    return probs["<unk>"] + penalty


def unigram_nats(train: Sequence[Sequence[int]], eos: int, vocab_size: int,
                 sentences: Sequence[Sequence[int]]) -> list[float]:
    """Each sentence's nats (its words and its end) under the add-one unigram of `train`."""
    counts = Counter(i for s in train for i in s)
    counts[eos] += len(train)
    unigram = Unigram(dict(counts), vocab_size)
    return [sum(unigram.nats(i) for i in s if i != PAD_ID) + unigram.nats(eos)
            for s in sentences]


def total(nats: Sequence[float], sentences: Sequence[Sequence[int]]) -> LogLoss:
    """A split's loss: every sentence's words and its end."""
    return LogLoss(math.fsum(nats), sum(len(s) + 1 for s in sentences))
