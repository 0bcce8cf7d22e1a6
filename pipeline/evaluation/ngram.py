"""The classical answers every cell's perplexity stands next to, on the same tokens and
vocabulary: a unigram model, and modified Kneser-Ney n-grams estimated by KenLM's `lmplz`
(Heafield et al. 2013) and scored by its Python module.

NLTK's `nltk.lm.KneserNeyInterpolated`, the pure-Python alternative, scored 42 ms per token
after fitting 100,000 Brown words here (its continuation counts scan the n-gram table on
every query) and gives unseen words probability zero: hours for a test split. `lmplz` fits
800,000 words at order 5 in 3 s (docs/language_model.md).

Sentences go to KenLM as their vocabulary ids, written as numbers: the n-gram then reads
exactly the neural models' tokens (`<unk>` included, which lmplz refuses to read as a word),
and scores each sentence's words and its end, as the neural models do."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


# What KenLM's C++ loader prints for every ARPA file it reads (a binary format loads faster;
# lmplz writes ARPA, and reading it takes a second here).
ARPA_ADVICE = "Loading the LM will be faster if you build a binary file."


@contextmanager
def quiet_stderr(known: str) -> Iterator[None]:
    """Run C++ code that writes to the process's stderr, passing on every line but `known`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines():
                if line.strip() and line.strip() != known:
                    print(line, file=sys.stderr)


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
    its end, from <s>."""
    import kenlm  # compiled; imported where a baseline is scored

    config = kenlm.Config()
    config.show_progress = False  # a progress bar on stderr for every model read
    with quiet_stderr(ARPA_ADVICE):
        model = kenlm.Model(str(arpa), config)
    return [-model.score(" ".join(map(str, s)), bos=True, eos=True) * LN10
            for s in sentences]


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
