"""Champion and challenger. Each round that retrains a task judges its winning cell on the
task's current test split, on the examples that neither it nor the champion learned from (each
model's folder says what it saw: seen.json). A winner that is not significantly better than
always predicting its training split's most frequent label (a language model: than the
unigram of its training text) learned nothing and is not registered. One that learned becomes
a new version of `rnnbench-<task>`, aliased `challenger`; the alias `champion` moves to it if
there is no champion yet, or if it beats the champion by a paired test over the test split's
groups at p < 0.05. The champion may have been trained on older data, with a vocabulary of
its own, so both predict from the texts as they were read (language models: scored on the
words both vocabularies know)."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.config import Family, Params, TaskParams
from pipeline.data.prepare import read_test_examples
from pipeline.data.seen import Seen, read_seen
from pipeline.errors import fail
from pipeline.model.predictor import Predictor, ScoredText
from pipeline.model.record import TrainRecord, read_record
from pipeline.paths import Layout
from pipeline.report.summary import SUMMARY_FILE, read_summary
from pipeline.scoring.examples import by_group, headline, per_example
from pipeline.scoring.perplexity import Unigram
from pipeline.scoring.stats import Comparison, p_value, paired_bootstrap, ratio

ALPHA = 0.05
Scores = tuple[np.ndarray, np.ndarray]  # per test example, the metric as num / den


@dataclass(frozen=True)
class Evidence:
    """What the challenger was judged on: the current test examples new to both models."""

    examples: int  # judged on
    excluded: int  # left out: the model (or the champion) trained or validated on them
    champion: bool  # there was a champion, whose seen examples were left out too
    unknown: bool  # the champion's folder does not say what it saw (trained before seen.json)
    baseline: float  # always predicting the challenger's most frequent training label
    baseline_name: str  # "always predicting 'NOUN'", or a language model's unigram
    baseline_p: float  # the challenger against that baseline

    def words(self) -> str:
        left = (f", {self.excluded:,} left out as seen in training" if self.excluded else "")
        new = "new to both models" if self.champion else "new to the model"
        return f"on {self.examples:,} test examples {new}{left}" + (
            " (the champion's own training examples are not recorded: it predates seen.json)"
            if self.unknown else "")


@dataclass(frozen=True)
class Decision:
    """What a round decided for one task, and on what evidence."""

    task: str
    version: str | None  # the challenger's registered version; None: it did not learn
    cell: str
    seed: int
    metric: str
    challenger: float  # its score on the judged examples
    evidence: Evidence
    champion_version: str | None = None  # None: there was no champion
    champion: float | None = None
    p: float | None = None
    method: str = ""
    promoted: bool = False

    @property
    def learned(self) -> bool:
        e = self.evidence
        return self.challenger > e.baseline and e.baseline_p < ALPHA

    def shown(self, value: float) -> str:
        """A score as the report shows it: a language model's log-likelihood per token as its
        perplexity (exp(-x)), anything else in %."""
        return (f"perplexity {math.exp(-value):.2f}" if self.metric == "log_likelihood"
                else f"{self.metric} {value:.2%}")

    def words(self) -> str:
        """`promoted: challenger GRU seed 42 (v3) accuracy 78.1% vs champion (v2) 76.0%, ...`."""
        e = self.evidence
        if not self.learned:
            return (f"nothing registered: {self.cell} seed {self.seed} did not learn, "
                    f"{self.shown(self.challenger)} against {self.shown(e.baseline)} for "
                    f"{e.baseline_name}, {p_value(e.baseline_p)} ({e.words()})")
        if self.champion_version is None:
            return (f"first champion: {self.cell} seed {self.seed} (v{self.version}), "
                    f"{self.shown(self.challenger)} against {self.shown(e.baseline)} for "
                    f"{e.baseline_name}, {p_value(e.baseline_p)} ({e.words()})")
        assert self.champion is not None
        # "kept" alone hid which side a small p favoured
        outcome = ("promoted" if self.promoted else
                   "kept the champion (it is significantly better)"
                   if self.champion > self.challenger and (self.p or 1.0) < ALPHA else
                   "kept the champion (the challenger is not significantly better)")
        return (f"{outcome}: challenger {self.cell} seed {self.seed} (v{self.version}) "
                f"{self.shown(self.challenger)} vs champion (v{self.champion_version}) "
                f"{self.shown(self.champion).split()[-1]}, {p_value(self.p or 1.0)} "
                f"({self.method}; {e.words()})")

    def tags(self) -> dict[str, str]:
        e = self.evidence
        tags = {"promotion": ("first champion" if self.champion_version is None
                              else "promoted" if self.promoted else "kept"),
                "promotion.metric": self.metric,
                "promotion.challenger_score": f"{self.challenger:.6f}",
                "promotion.examples": str(e.examples),
                "promotion.excluded_seen": str(e.excluded),
                "promotion.baseline_score": f"{e.baseline:.6f}",
                "promotion.baseline_p_value": f"{e.baseline_p:.6g}"}
        if self.champion_version is not None:
            tags |= {"promotion.champion_version": self.champion_version,
                     "promotion.champion_score": f"{self.champion:.6f}",
                     "promotion.p_value": f"{self.p:.6g}", "promotion.method": self.method}
        return tags


def winner(params: TaskParams, layout: Layout) -> TrainRecord:
    """The report's best cell on this task (significantly or not: the champion test decides),
    at its seed with the best validation score (the test split is what it is then judged on,
    not what picks it)."""
    summary = read_summary(layout.reports).tasks.get(params.name)
    if summary is None or summary.best not in params.cells:
        fail(f"{layout.reports / SUMMARY_FILE}: no ranking for {params.name}; run the "
             "report stage (`dvc repro`)")
    records = [read_record(layout.model_dir(summary.best, seed)) for seed in params.seeds]
    return max(records, key=lambda r: r.best_val)


def scores(predictor: Predictor, examples: list[dict[str, Any]], metric: str) -> Scores:
    """Per test example, the metric as num/den (what the paired bootstrap resamples)."""
    preds = predictor.predict([{k: ex[k] for k in ("text", "tokens") if k in ex}
                               for ex in examples])
    return _per_example(examples, [p.get("label", p.get("tags")) for p in preds], metric)


def baseline_scores(label: str, examples: list[dict[str, Any]], metric: str) -> Scores:
    """Per test example, the metric of always predicting `label` (every token's tag)."""
    return _per_example(examples, [label if "label" in ex else [label] * len(ex["tags"])
                                   for ex in examples], metric)


def _per_example(examples: list[dict[str, Any]], predicted: list[Any], metric: str) -> Scores:
    rows = []
    for i, (ex, guess) in enumerate(zip(examples, predicted, strict=True)):
        if "label" in ex:
            rows.append({"example": i, "actual": str(ex["label"]), "predicted": guess})
        else:
            rows += [{"example": i, "actual": str(gold), "predicted": tag}
                     for gold, tag in zip(ex["tags"], guess, strict=False)]
    return per_example(rows, metric, len(examples))


def unigram_of(seen: Seen, predictor: Predictor) -> Unigram:
    """A language model's baseline: its training text's token counts (seen.json), add-one
    smoothed over its vocabulary, as the evaluate stage's unigram."""
    stoi = predictor.vocab.stoi
    return Unigram({stoi[token]: n for token, n in seen.train_label_counts.items()
                    if token in stoi}, len(predictor.vocab))


def lm_scores(scored: list[list[ScoredText]], unigram: Unigram) -> tuple[list[Scores], Scores]:
    """Per test sentence, each model's log-likelihood (num) over the targets counted (den),
    and the unigram's over the same: the sentence's end and every word that all the models'
    vocabularies know. An unknown word is scored as `<unk>`, a whole class of words, which
    would favour the smaller vocabulary; the first model's tokens give the unigram's."""
    n = len(scored[0])
    models = [(np.zeros(n), np.zeros(n)) for _ in scored]
    base = (np.zeros(n), np.zeros(n))
    for i in range(n):
        texts = [by_model[i] for by_model in scored]
        words = min(len(t.nats) for t in texts) - 1
        known = torch.stack([t.known[:words] for t in texts]).all(dim=0)
        counted = [*torch.nonzero(known).flatten().tolist(), len(texts[0].nats) - 1]
        for (num, den), text in zip(models, texts, strict=True):
            end = len(text.nats) - 1
            picked = text.nats[[*counted[:-1], end]]
            num[i], den[i] = -float(picked.double().sum()), len(counted)
        base[0][i] = -math.fsum(unigram.nats(int(texts[0].targets[j])) for j in counted)
        base[1][i] = len(counted)
    return models, base


def promote(client: MlflowClient, params: TaskParams, layout: Layout, commit: str) -> Decision:
    """The task's winner, judged on the task's current test split."""
    record = winner(params, layout)
    return judge(client, layout.model_dir(record.cell, record.seed),
                 read_test_examples(layout.prepared), commit)


def promote_winners(params: Params, root: Path) -> list[tuple[str, str]]:
    """`rnnbench promote`: each task's winner judged and registered as a retraining round
    does it (make run's last step, so that a first run leaves a champion to predict and serve
    with; the retraining workflow's, once the round's pull request is open). A winner already
    registered (nothing retrained since) is said, not added again. (task, what was decided)."""
    client = tracking.client_for(params, root)
    commit = tracking.git_info(root)["commit"]
    out = []
    for task in params.tasks:
        layout = Layout(root, task)
        record = winner(params.for_task(task), layout)
        done = tracking.version_of_run(client, task, record.run_id)
        out.append((task, f"{record.cell} seed {record.seed} is already version {done.version}"
                    if done is not None else
                    promote(client, params.for_task(task), layout, commit).words()))
    return out


def compare(a: Scores, b: Scores, groups: list[str]) -> Comparison:
    """a against b, whole test groups resampled (a film's snippets are not independent)."""
    return paired_bootstrap(*(by_group(x, groups) for x in (*a, *b)), unit="test groups")


def judge(client: MlflowClient, folder: Path, examples: list[dict[str, Any]], commit: str
          ) -> Decision:
    """Judge the model in `folder` on the `examples` (the current test split) that neither it
    nor the champion saw; register it as challenger if it learned, and make it champion if it
    is the first, or significantly better than the champion."""
    record = read_record(folder)
    task, (metric, _) = record.task, headline(record.family, record.labels)
    seen = read_seen(folder)
    if seen is None:
        fail(f"{folder}: no seen.json (what the model trained on); retrain it with this "
             "version of rnnbench")
    champion = tracking.version_by_alias(client, task, tracking.CHAMPION)
    with tempfile.TemporaryDirectory(prefix="rnnbench-champion-") as tmp:
        held = champion_seen = None
        if champion is not None:
            uri = f"models:/{tracking.registered_name(task)}@{tracking.CHAMPION}"
            held_folder = tracking.download_model_folder(client, uri, Path(tmp))
            held, champion_seen = Predictor(held_folder), read_seen(held_folder)
    new = [ex for ex in examples if not any(s.saw(ex) for s in (seen, champion_seen) if s)]
    groups = [str(ex.get("group", i)) for i, ex in enumerate(new)]
    if not new:
        fail(f"{task}: none of the {len(examples)} test examples is new to the model"
             f"{' and the champion' if champion else ''}; nothing to judge it on")
    predictor = Predictor(folder)
    theirs: Scores | None = None
    if record.family == Family.LANGUAGE_MODEL:
        inputs = [{"tokens": ex["tokens"]} for ex in new]
        scored = [m.score(inputs) for m in (predictor, *([held] if held else []))]
        (ours, *rest), base = lm_scores(scored, unigram_of(seen, predictor))
        theirs = rest[0] if rest else None
        baseline = "the unigram of its training text"
    else:
        label = seen.majority_label()
        ours, base = scores(predictor, new, metric), baseline_scores(label, new, metric)
        theirs = scores(held, new, metric) if held is not None else None
        baseline = f"always predicting {label!r}"
    evidence = Evidence(len(new), len(examples) - len(new), champion is not None,
                        champion is not None and champion_seen is None, ratio(*base), baseline,
                        compare(ours, base, groups).p)
    decision = Decision(task, None, record.cell, record.seed, metric, ratio(*ours), evidence)
    if not decision.learned:
        return decision  # a model that learned nothing is no challenger
    version = tracking.register_version(client, task, record.run_id, {
        "cell": record.cell, "seed": str(record.seed), "data_hash": record.data_hash,
        "git_commit": commit, "run_id": record.run_id,
        f"test_{metric}": f"{decision.challenger:.6f}", "test_examples": str(len(new))})
    tracking.set_alias(client, task, tracking.CHALLENGER, version.version)
    decision = Decision(task, version.version, record.cell, record.seed, metric,
                        decision.challenger, evidence, promoted=True)
    if champion is not None and theirs is not None:
        test = compare(ours, theirs, groups)
        decision = Decision(task, version.version, record.cell, record.seed, metric,
                            decision.challenger, evidence, champion.version, ratio(*theirs),
                            test.p, test.method, promoted=test.diff > 0 and test.p < ALPHA)
    tracking.tag_version(client, task, version.version, decision.tags())
    if decision.promoted:
        tracking.set_alias(client, task, tracking.CHAMPION, version.version)
    return decision
