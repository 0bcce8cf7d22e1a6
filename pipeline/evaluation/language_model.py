"""Scoring running text with a language model: every target's negative log-likelihood, read
in rows and windows with the state carried, in stream order (so that each sentence's and each
document's loss can be summed for paired tests); and the evaluate stage of a language-model
task: every cell and seed, and the n-gram baselines, on the same test tokens."""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pipeline import tracking
from pipeline.config import TaskParams
from pipeline.config.records import stored
from pipeline.data.corpus import Stream, load_stream
from pipeline.data.text import Vocab
from pipeline.data.windows import EVAL_ROWS, EVAL_WINDOW, rows
from pipeline.evaluation.context import context_curve, sample_targets
from pipeline.evaluation.ngram import fit_kneser_ney, sentence_nats, total, unigram_nats
from pipeline.files import atomic_file, read_json, write_json
from pipeline.model.generate import generate
from pipeline.model.inference import load_trained
from pipeline.model.language_model import LanguageModel, token_nats
from pipeline.paths import VOCAB_FILE, Layout
from pipeline.scoring.perplexity import LogLoss
from pipeline.scoring.records import (
    LanguageModelDiagnostics,
    PerLabel,
    Sample,
    TestMetrics,
    write_lm_diagnostics,
    write_per_label,
    write_test_metrics,
)

NGRAM_ORDERS = (3, 4, 5)  # the Kneser-Ney order is chosen on validation perplexity


@torch.no_grad()
def score_stream(net: LanguageModel, stream: Stream, batch_size: int = EVAL_ROWS,
                 window: int = EVAL_WINDOW) -> tuple[torch.Tensor, torch.Tensor]:
    """([targets] float64 nats, [targets] bool: the most likely next token was the target),
    in the stream's order. The window changes nothing but memory: the state is carried."""
    net.eval()
    device = next(net.parameters()).device
    laid_out = rows(stream.ids, batch_size)
    nats = torch.zeros(stream.targets, dtype=torch.float64)
    hits = torch.zeros(stream.targets, dtype=torch.bool)
    state = None
    for inputs, targets, positions in laid_out.windows(window):
        logits, state = net(inputs.to(device), state)
        real = positions >= 0
        nats[positions[real]] = token_nats(logits, targets.to(device)).cpu()[real].double()
        hits[positions[real]] = (logits.argmax(-1).cpu() == targets)[real]
    return nats, hits


def target_nats(net: LanguageModel, stream: Stream, batch_size: int, bptt: int) -> torch.Tensor:
    """[targets] float64: each target's nats, in the stream's order."""
    return score_stream(net, stream, batch_size, bptt)[0]


def stream_loss(net: LanguageModel, stream: Stream, batch_size: int, bptt: int) -> LogLoss:
    return LogLoss(float(target_nats(net, stream, batch_size, bptt).sum()), stream.targets)


def per_sentence(token_nats: torch.Tensor, sentence_of_target: torch.Tensor,
                 sentences: int) -> torch.Tensor:
    """Each sentence's summed nats (float64) from every target's: what paired tests resample."""
    out = torch.zeros(sentences, dtype=torch.float64)
    return out.index_add_(0, sentence_of_target, token_nats.double())


def write_sentence_nats(path: Path, stream: Stream, nats: list[float] | torch.Tensor) -> None:
    """One row per test sentence: its targets (words and end) and their summed nats, what the
    report's intervals and paired tests resample (by document)."""
    tokens = torch.diff(stream.ends, prepend=torch.zeros(1, dtype=torch.int64)).tolist()
    values = nats.tolist() if isinstance(nats, torch.Tensor) else list(nats)
    with atomic_file(path) as fh:
        writer = csv.writer(fh)
        writer.writerow(["example", "tokens", "nats"])
        writer.writerows((i, n, repr(float(v))) for i, (n, v) in enumerate(
            zip(tokens, values, strict=True)))


def lm_metrics(loss: LogLoss, hits: int) -> dict[str, float]:
    return {"perplexity": round(loss.perplexity, 4),
            "bits_per_token": round(loss.bits_per_token, 6),
            "log_likelihood": round(-loss.nats / loss.tokens, 6),
            "accuracy": round(hits / loss.tokens, 6), "loss": round(loss.nats / loss.tokens, 6)}


def evaluate_language_model(params: TaskParams, cell: str, layout: Layout, seed: int
                            ) -> dict[str, Any]:
    """Test perplexity (and bits per token, next-word accuracy) of one trained cell and seed,
    and its per-sentence losses, written to metrics/<task>/ and logged to its MLflow run."""
    model, record = load_trained(layout.model_dir(cell, seed),
                                 hint=f"run train@{layout.task}-{cell}-{seed}")
    torch.set_num_threads(record.params.train.threads)
    test = load_stream(layout.split("test"))
    start = time.perf_counter()
    nats, hits = score_stream(model, test)
    seconds = time.perf_counter() - start
    loss = LogLoss(float(nats.sum()), test.targets)
    sentences = len(test.ends)
    metrics = TestMetrics(**lm_metrics(loss, int(hits.sum())),
                          num_parameters=record.num_parameters,
                          train_seconds=record.train_seconds, epochs=record.epochs,
                          inference_examples_per_s=round(sentences / seconds, 1),
                          test_examples=sentences)
    write_test_metrics(layout.test_metrics(cell, seed), metrics)
    write_per_label(layout.per_label(cell, seed), PerLabel(scores={}))
    write_sentence_nats(layout.predictions(cell, seed), test,
                        per_sentence(nats, test.sentence_of_target(), sentences))
    sample = sample_targets(test)
    curve = context_curve(model, test, nats, sample)
    write_lm_diagnostics(layout.diagnostics(cell, seed), LanguageModelDiagnostics(
        context_targets=len(sample), context_perplexity={k: round(v, 4) for k, v in
                                                         curve.items()},
        samples=samples(model, layout, test)))
    client = tracking.client_for(params, layout.root)
    tracking.ensure_run(client, record.run_id)
    tracking.log_metrics(client, record.run_id, metrics.logged())
    tracking.log_files(client, record.run_id, [
        (path, "evaluation") for path in (layout.test_metrics(cell, seed),
                                          layout.predictions(cell, seed),
                                          layout.diagnostics(cell, seed))])
    untuned = " (untuned)" if layout.untuned else ""
    print(f"{layout.task}/{cell}/seed{seed}{untuned}: test perplexity {loss.perplexity:.2f} "
          f"({loss.bits_per_token:.3f} bits per token, next-word accuracy "
          f"{metrics.accuracy:.2%})", file=sys.stderr)
    return stored(metrics)


SAMPLE_PROMPTS, SAMPLE_PROMPT_WORDS, SAMPLE_TOKENS, SAMPLE_TEMPERATURE = 2, 3, 20, 0.8


def samples(model: LanguageModel, layout: Layout, test: Stream) -> list[Sample]:
    """The report's samples of a cell's text: the first words of the test split's first
    sentences continued, seed 1, temperature 0.8; the same prompts and draws for every cell."""
    vocab = Vocab.load(layout.prepared / VOCAB_FILE)
    prompts = [vocab.decode(s[:SAMPLE_PROMPT_WORDS])
               for s in test.sentences()[:SAMPLE_PROMPTS]]
    return [Sample(prompt=" ".join(p), text=" ".join(generate(
        model, vocab, p, SAMPLE_TOKENS, SAMPLE_TEMPERATURE, seed=1))) for p in prompts]


def evaluate_baselines(layout: Layout) -> dict[str, dict[str, Any]]:
    """The unigram and the Kneser-Ney n-gram (its order chosen on validation) on the test
    split's tokens, written beside the cells' metrics as `unigram` and `kneser_ney`."""
    vocab_size = len(read_json(layout.prepared / VOCAB_FILE))
    train, val, test = (load_stream(layout.split(s)) for s in ("train", "val", "test"))
    learned, held, tested = train.sentences(), val.sentences(), test.sentences()
    eos = int(train.ids[0])  # every stream starts with <eos>
    out: dict[str, dict[str, Any]] = {}
    nats = unigram_nats(learned, eos, vocab_size, tested)
    out["unigram"] = baseline_metrics(layout, "unigram", test, tested, nats, {})
    with tempfile.TemporaryDirectory(prefix="rnnbench-ngram-") as scratch:
        by_order = {}
        for order in NGRAM_ORDERS:
            arpa = Path(scratch) / f"{order}.arpa"
            fit_kneser_ney(learned, order, arpa)
            by_order[order] = total(sentence_nats(arpa, held), held).perplexity
        best = min(by_order, key=lambda k: (by_order[k], k))
        nats = sentence_nats(Path(scratch) / f"{best}.arpa", tested)
    out["kneser_ney"] = baseline_metrics(
        layout, "kneser_ney", test, tested, nats,
        {"order": best, "val_perplexity_by_order": {str(k): round(v, 4)
                                                    for k, v in by_order.items()}})
    return out


def baseline_metrics(layout: Layout, name: str, test: Stream, sentences: list[list[int]],
                     nats: list[float], extra: dict[str, Any]) -> dict[str, Any]:
    loss = total(nats, sentences)
    values = {k: v for k, v in lm_metrics(loss, 0).items() if k != "accuracy"}
    values = {**values, **extra, "test_examples": len(sentences)}
    write_json(layout.metrics / "test" / f"{name}.json", values)
    write_sentence_nats(layout.metrics / "predictions" / f"{name}.csv", test, nats)
    print(f"{layout.task}/{name}: test perplexity {loss.perplexity:.2f}"
          + (f" (order {extra['order']}, chosen on validation)" if "order" in extra else ""),
          file=sys.stderr)
    return values

