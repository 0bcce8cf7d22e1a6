"""A language-modelling task's section of the report: each cell's test perplexity next to the
unigram and Kneser-Ney n-gram of the same run, on the same tokens; the cells tested pairwise
and each against the n-gram, all in one Holm family.

Cells are ranked, tested and grouped on the log-likelihood per token, whose exp(-x) is the
perplexity: the same order reversed, so "higher log-likelihood" and "lower perplexity" are
one claim. Every figure shown is a perplexity; a difference is shown as how much lower one
perplexity is than another (a ratio, since a difference of log-likelihoods is the log of the
perplexities' ratio)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.config.records import stored
from pipeline.files import read_json
from pipeline.paths import Layout
from pipeline.report.caveats import budget_caveat
from pipeline.report.comparison import (
    ALPHA,
    Tests,
    compare_cells,
    grouping,
    holm,
    ranked,
    verdict_head,
    winner,
)
from pipeline.report.figures import CELL_NAMES, panels
from pipeline.report.results import CellResult, TaskResult, read_predictions
from pipeline.report.task import as_yaml, curves_caption, sample_of
from pipeline.scoring.examples import by_group, per_example
from pipeline.scoring.records import Sample, read_lm_diagnostics
from pipeline.scoring.stats import Comparison, bootstrap_interval, p_value, paired_bootstrap

BASELINES = {"unigram": "unigram (add-one)", "kneser_ney": "Kneser-Ney"}


@dataclass(frozen=True)
class Baseline:
    """An n-gram's test results: its metrics file and, per test group, minus its nats and its
    tokens (what it is tested on beside the cells)."""

    name: str
    metrics: dict[str, Any]
    num: np.ndarray
    den: np.ndarray

    @property
    def title(self) -> str:
        order = self.metrics.get("order")
        return f"{BASELINES[self.name]} {order}-gram" if order else BASELINES[self.name]


def perplexity(log_likelihood: float) -> float:
    return math.exp(-log_likelihood)


def lower(diff: float) -> str:
    """A log-likelihood difference (a - b) as a's perplexity relative to b's: `4.1% lower`,
    `12.0% higher`, or from twice on `2.4 times as high`."""
    ratio = math.exp(-diff)
    if ratio >= 2:
        return f"{ratio:.1f} times as high"
    return f"{abs(1 - ratio):.1%} {'lower' if ratio <= 1 else 'higher'}"


def read_baselines(layout: Layout, groups: np.ndarray) -> list[Baseline]:
    out = []
    for name in BASELINES:
        metrics = read_json(layout.metrics / "test" / f"{name}.json", "rerun its evaluate stage")
        rows = read_predictions(layout.metrics / "predictions" / f"{name}.csv")
        num, den = per_example(rows, "log_likelihood", len(groups))
        out.append(Baseline(name, metrics, by_group(num, groups), by_group(den, groups)))
    return out


def lm_tests(results: list[CellResult], ngram: Baseline) -> tuple[Tests, dict[str, Comparison]]:
    """Every pair of cells, and every cell against the n-gram: one family of tests, each
    p-value Holm-adjusted over all of them."""
    order = ranked(results)
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    raw = [compare_cells(a, b, "log_likelihood") for a, b in pairs]
    against = [paired_bootstrap(r.grouped[0].sum(0), r.grouped[1].sum(0), ngram.num, ngram.den,
                                unit=r.unit) for r in results]
    adjusted = holm(raw + against)
    family = f", Holm-adjusted over {len(adjusted)} tests" if len(adjusted) > 1 else ""
    tests: Tests = {}
    for (a, b), test, p in zip(pairs, raw, adjusted, strict=False):
        tests[a.cell, b.cell] = replace(test, p=p, method=test.method + family)
        tests[b.cell, a.cell] = replace(test, p=p, method=test.method + family, diff=-test.diff)
    versus = {r.cell: replace(t, p=p, method=t.method + family)
              for r, t, p in zip(results, against, adjusted[len(raw):], strict=True)}
    return tests, versus


def significant(test: Comparison) -> str:
    return "significant" if test.p < ALPHA else "not significant"


def lm_verdict(results: list[CellResult], tests: Tests, versus: dict[str, Comparison],
               ngram: Baseline) -> str:
    """What the tests support about the cells, and about each cell against the n-gram."""
    order = ranked(results)
    best = order[0]
    seeds = len(best.runs)
    over = f" (mean of {seeds} seeds)" if seeds > 1 else ""
    scores = ", ".join(f"{CELL_NAMES[r.cell]} {perplexity(r.score.mean):.1f}" for r in order)
    head = (f"Only {CELL_NAMES[best.cell]} was trained" if len(order) == 1 else
            verdict_head(results, tests, "perplexity",
                         wins="lower than every other cell's, significantly",
                         better="significantly lower perplexity"))
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    gaps = "; ".join(
        f"{CELL_NAMES[a.cell]} vs {CELL_NAMES[b.cell]}: {lower(tests[a.cell, b.cell].diff)}, "
        f"{significant(tests[a.cell, b.cell])} ({p_value(tests[a.cell, b.cell].p)})"
        for a, b in pairs)
    ngram_ppl = ngram.metrics["perplexity"]
    against = "; ".join(
        f"{CELL_NAMES[r.cell]} {lower(versus[r.cell].diff)}, {significant(versus[r.cell])} "
        f"({p_value(versus[r.cell].p)})" for r in order)
    method = next(iter(versus.values())).method
    text = (f"{head}. Perplexity, lower is better: {scores}{over}"
            + (f". {gaps}" if gaps else "")
            + f". Against the {ngram.title} of the same tokens ({ngram_ppl:.1f}): {against}; "
            f"{method}.")
    if seeds == 1:
        text += (f" With one seed the tests resample {best.unit}: they say how sure the ranking "
                 "is on this test text, not whether another seed would keep it.")
    return text


def lm_caveats(task: TaskResult, baselines: list[Baseline]) -> list[str]:
    """A cell no better than word frequencies did not learn; cells cut off by the epoch
    budget may rank otherwise with more epochs."""
    unigram = next(b for b in baselines if b.name == "unigram").metrics["perplexity"]
    out = [f"{CELL_NAMES[r.cell]} did not learn: its test perplexity "
           f"{perplexity(r.score.mean):.1f} is no lower than the unigram's ({unigram:.1f}); "
           "read nothing else of it as a property of the cell"
           for r in task.cells if perplexity(r.score.mean) >= unigram]
    budget = budget_caveat(task)
    return [*out, budget] if budget else out


def render_language_model(task: TaskResult, tests: Tests, versus: dict[str, Comparison],
                          baselines: list[Baseline], context: ContextCurves, verdict: str
                          ) -> list[str]:
    params, results, stats, source = task.params, task.cells, task.stats, task.source
    seeds = len(params.seeds)
    fig = f"figures/{params.name}"
    caveats = lm_caveats(task, baselines)
    lines = [f"## {params.name}: `{params.data.dataset}` (language modelling)", "", verdict, "",
             *[f"- **Caveat:** {caveat}." for caveat in caveats], *([""] if caveats else []),
             "| model | test perplexity | 95% CI ("
             + ("seeds and " if seeds > 1 else "") + f"{results[0].unit}) | bits per token | "
             "next-word accuracy | parameters (hidden units) | train time (s) | epochs | "
             "MLflow run |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        t, sc = r.test, r.score
        low, high = perplexity(sc.high), perplexity(sc.low)
        run = (f"`{r.train.run_id}`" if seeds == 1
               else f"{seeds} runs (tag `rnnbench.cell = {r.cell}`)")
        lines.append(f"| {CELL_NAMES[r.cell]} | {perplexity(sc.mean):.1f} | "
                     f"[{low:.1f}, {high:.1f}] | {t.bits_per_token:.3f} | {t.accuracy:.2%} | "
                     f"{t.num_parameters:,.0f} ({r.train.params.model.hidden_size}) | "
                     f"{t.train_seconds:.1f} | {t.epochs:.3g} | {run} |")
    for b in baselines:
        low, high = (perplexity(x) for x in reversed(bootstrap_interval(b.num, b.den)))
        lines.append(f"| {b.title} | {b.metrics['perplexity']:.1f} | [{low:.1f}, {high:.1f}] | "
                     f"{b.metrics['bits_per_token']:.3f} | | | | | |")
    kn = next(b for b in baselines if b.name == "kneser_ney")
    orders = ", ".join(f"{k}: {v:.1f}" for k, v in kn.metrics["val_perplexity_by_order"].items())
    lines += ["", "Perplexity: exp of the mean negative log-likelihood of every test target "
              "(each sentence's words and its end; `<unk>` counts as the word it stands for), "
              "the n-grams scoring exactly the tokens the cells score. The recurrent cells read "
              "the test split as one running text; the n-grams restart at each sentence. The "
              f"Kneser-Ney order was chosen on validation perplexity ({orders}); modified "
              "Kneser-Ney as KenLM's lmplz estimates it.", "",
              "### Significance", "",
              "| row vs column (perplexity) | " + " | ".join(CELL_NAMES[r.cell] for r in results)
              + f" | {kn.title} |", "|---|" + "---:|" * (len(results) + 1)]
    for a in results:
        cells = ["" if a.cell == b.cell else
                 f"{lower(tests[a.cell, b.cell].diff)} ({p_value(tests[a.cell, b.cell].p)})"
                 for b in results]
        cells.append(f"{lower(versus[a.cell].diff)} ({p_value(versus[a.cell].p)})")
        lines.append(f"| {CELL_NAMES[a.cell]} | " + " | ".join(cells) + " |")
    method = next(iter(versus.values())).method
    lines += ["", f"Test: {method}; two-sided, significant below p = 0.05.", ""]
    lines += context_section(context, fig)
    sp = stats.splits
    sampled = (f"a seeded sample of whole documents up to {params.data.max_words:,} words "
               f"(`task.{params.name}.data.max_words`; `null` = all)"
               if params.data.max_words else "all of it")
    split = (f"in reading order by word count ({as_yaml(params.data.word_split.model_dump())})"
             if params.data.word_split else source.splits)
    lines += [
        "### Learning curves", "",
        panels("learning curves", f"{fig}_learning_curves", [r.cell for r in results]), "",
        curves_caption(seeds, task.first.monitor), "",
        "### Data", "",
        f"- Source: `{source.source}` (sha256 `{source.sha256[:16]}…`), {source.licence}.",
        f"- {stats.examples:,} sentences, {sampled}; split {split}: "
        + ", ".join(f"{s} {sp[s].tokens:,} tokens ({sp[s].examples:,} sentences, "
                    f"{sp[s].groups:,} documents)" for s in sp) + ".",
        f"- Vocabulary {stats.vocab_size:,} (training split only, words seen at least "
        f"{params.prepare.min_freq} times, and the sentence end); test `<unk>` rate "
        f"{sp['test'].oov_rate:.1%}.",
        "", "### Settings", "",
        f"- Model: `{as_yaml(params.model.model_dump())}`",
        f"- Training: `{as_yaml(params.train.model_dump())}`",
        f"- Device: {task.first.accelerator} ({task.first.precision}); data hash "
        f"`{task.first.data_hash[:16]}…`.",
        f"- MLflow experiment `{params.experiment}`, comparison run(s) "
        f"{', '.join(f'`{p}`' for p in task.parent_runs)}.", ""]
    return lines


@dataclass(frozen=True)
class ContextCurves:
    """Each cell's context-cut perplexities (over its seeds, the exp of their mean log), keyed
    by k, and on how many sampled test targets."""

    perplexity: dict[str, dict[str, float]]
    targets: int
    samples: dict[str, list[Sample]]  # each cell's first seed's


def read_context_curves(task: TaskResult, layout: Layout) -> ContextCurves:
    out, targets, samples = {}, 0, {}
    for r in task.cells:
        cuts = [read_lm_diagnostics(layout.diagnostics(r.cell, run.seed)) for run in r.runs]
        out[r.cell] = {k: math.exp(sum(math.log(c.context_perplexity[k]) for c in cuts)
                                   / len(cuts)) for k in cuts[0].context_perplexity}
        targets = cuts[0].context_targets
        samples[r.cell] = cuts[0].samples  # the first seed's
    return ContextCurves(out, targets, samples)


def context_section(context: ContextCurves, fig: str) -> list[str]:
    curves, targets = context.perplexity, context.targets
    ks = list(next(iter(curves.values())))
    lines = ["### How far back each cell reads", "",
             f"Test perplexity on {targets:,} sampled test targets, each predicted from only "
             "the last k tokens before it, from a fresh state (Khandelwal et al. 2018); `all`: "
             "its whole context. Where a curve stops falling, more context stops helping that "
             "cell. No test was run on these curves: they describe each cell, they do not rank "
             "the cells.", "",
             "| cell | " + " | ".join(f"k = {k}" for k in ks) + " |",
             "|---|" + "---:|" * len(ks)]
    for cell, curve in curves.items():
        lines.append(f"| {CELL_NAMES[cell]} | " + " | ".join(f"{curve[k]:.1f}" for k in ks)
                     + " |")
    lines += ["", f"![perplexity by context]({fig}_context.png)", "", "### Samples", "",
              "Each cell continues the first words of the test split's first sentences (seed "
              "1, temperature 0.8, 20 tokens; the first seed's model): what its probabilities "
              "read like, not a measure.", ""]
    for cell, drawn in context.samples.items():
        lines += [f"- {CELL_NAMES[cell]}: " + "; ".join(
            f"*{s.prompt}* {s.text}".replace("<", "&lt;") for s in drawn)]
    return [*lines, ""]


def lm_summary(task: TaskResult, tests: Tests, versus: dict[str, Comparison],
               baselines: list[Baseline], context: ContextCurves) -> dict[str, Any]:
    """summary.json's entry for a language-modelling task."""
    results = task.cells
    order = ranked(results)
    g = grouping(results, tests)
    return {
        "dataset": task.params.data.dataset, "sample": sample_of(task.params),
        "family": task.stats.family,
        "ranked_by": "perplexity", "seeds": task.params.seeds, "best": order[0].cell,
        "winner": winner(results, tests),
        "tiers": [[r.cell for r in tier] for tier in g.tiers] if g.tiers is not None else None,
        "groups": g.letters,
        "cells": {r.cell: {**stored(r.test), "perplexity": perplexity(r.score.mean),
                           "perplexity_ci95": [perplexity(r.score.high),
                                               perplexity(r.score.low)],
                           "perplexity_ci95_over": (f"seeds and {r.unit}" if len(r.runs) > 1
                                                    else r.unit),
                           "seeds": {str(run.seed): {**stored(run.test),
                                                     "run_id": run.train.run_id}
                                     for run in r.runs}}
                  for r in results},
        "baselines": {b.name: b.metrics for b in baselines},
        # diff: log-likelihood per token, a minus b (a's perplexity is exp(-diff) times b's)
        "comparisons": [{"a": a.cell, "b": b.cell, **vars(tests[a.cell, b.cell])}
                        for i, a in enumerate(order) for b in order[i + 1:]],
        "against_ngram": {cell: vars(t) for cell, t in versus.items()},
        "context_perplexity": context.perplexity, "context_targets": context.targets,
        "caveats": lm_caveats(task, baselines),
    }
