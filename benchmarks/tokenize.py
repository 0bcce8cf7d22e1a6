"""Tokenize + vocabulary + encode throughput: rnnbench's regex against Hugging Face `tokenizers`.

Runs on the texts of data/raw (the real corpus), repeated to at least 20 MB so timings are
stable. Both sides lowercase, split words/punctuation, build a vocabulary and map to ids.

    python -m benchmarks.tokenize [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import save_results
from pipeline.data.text import Vocab, tokenize
from pipeline.paths import Layout


def timed(fn: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def regex_pipeline(texts: list[str]) -> None:
    tokens = [tokenize(t) for t in texts]
    vocab = Vocab.build(tokens, min_freq=2)
    for toks in tokens:
        vocab.encode(toks)


def hf_pipeline(texts: list[str]) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(
        min_frequency=2, special_tokens=["<pad>", "<unk>"]))
    tok.encode_batch_fast(texts) if hasattr(tok, "encode_batch_fast") else tok.encode_batch(texts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--task", default="sentiment", help="a downloaded text task")
    args = ap.parse_args()
    raw = Layout(Path("."), args.task).raw / "examples.jsonl"
    texts = [json.loads(line)["text"] for line in raw.open(encoding="utf-8")]
    corpus_mb = sum(len(t.encode()) for t in texts) / 1e6
    copies = max(1, int(20 / corpus_mb) + 1)
    texts = texts * copies
    mb = corpus_mb * copies

    results = {"machine": platform.machine(), "megabytes": round(mb, 1),
               "regex_mb_per_s": round(mb / timed(lambda: regex_pipeline(texts)), 2)}
    try:
        import tokenizers

        results["hf_tokenizers_version"] = tokenizers.__version__
        results["hf_wordlevel_mb_per_s"] = round(mb / timed(lambda: hf_pipeline(texts)), 2)
    except ImportError:
        results["hf_wordlevel_mb_per_s"] = None  # pip install tokenizers to compare
    save_results(args.out, f"tokenize_{platform.machine()}", results)


if __name__ == "__main__":
    main()
