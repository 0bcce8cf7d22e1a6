"""Champion and challenger. Each round that retrains a task registers its winning cell as a
new version of `rnnbench-<task>`, aliased `challenger`; the alias `champion` moves to it only
if it beats the champion on the current test split by a paired test at p < 0.05. Both are
scored anew on the same examples: the champion may have been trained on older data, with a
vocabulary of its own, so it predicts from the texts as they were read."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.config import TaskParams
from pipeline.data.prepare import read_test_examples
from pipeline.errors import fail
from pipeline.model.predictor import Predictor
from pipeline.model.record import TrainRecord, read_record
from pipeline.paths import Layout
from pipeline.report.summary import SUMMARY_FILE, read_summary
from pipeline.scoring.examples import by_group, headline, per_example
from pipeline.scoring.stats import p_value, paired_bootstrap, ratio

ALPHA = 0.05


@dataclass(frozen=True)
class Decision:
    """What a round decided for one task, and on what evidence."""

    task: str
    version: str  # the challenger's registered version
    cell: str
    seed: int
    metric: str
    challenger: float  # its score on the current test split
    champion_version: str | None  # None: there was no champion
    champion: float | None
    p: float | None
    method: str
    promoted: bool

    def words(self) -> str:
        """`promoted: GRU seed 42 (v3), accuracy 78.1% vs 76.0% (v2), p = 0.012`."""
        if self.champion_version is None:
            return (f"first champion: {self.cell} seed {self.seed} (v{self.version}), "
                    f"{self.metric} {self.challenger:.2%}")
        assert self.champion is not None
        # "kept" alone hid which side a small p favoured
        outcome = ("promoted" if self.promoted else
                   "kept the champion (it is significantly better)"
                   if self.champion > self.challenger and (self.p or 1.0) < ALPHA else
                   "kept the champion (the challenger is not significantly better)")
        return (f"{outcome}: challenger {self.cell} seed {self.seed} (v{self.version}) "
                f"{self.metric} {self.challenger:.2%} vs champion (v{self.champion_version}) "
                f"{self.champion:.2%}, {p_value(self.p or 1.0)} ({self.method})")

    def tags(self) -> dict[str, str]:
        tags = {"promotion": ("first champion" if self.champion_version is None
                              else "promoted" if self.promoted else "kept"),
                "promotion.metric": self.metric,
                "promotion.challenger_score": f"{self.challenger:.6f}"}
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


def scores(predictor: Predictor, examples: list[dict[str, Any]], metric: str
           ) -> tuple[np.ndarray, np.ndarray]:
    """Per test example, the metric as num/den (what the paired bootstrap resamples)."""
    preds = predictor.predict([{k: ex[k] for k in ("text", "tokens") if k in ex}
                               for ex in examples])
    rows = []
    for i, (ex, pred) in enumerate(zip(examples, preds, strict=True)):
        if "label" in pred:
            rows.append({"example": i, "actual": str(ex["label"]), "predicted": pred["label"]})
        else:
            rows += [{"example": i, "actual": str(gold), "predicted": guess}
                     for gold, guess in zip(ex["tags"], pred["tags"], strict=False)]
    return per_example(rows, metric, len(examples))


def promote(client: MlflowClient, params: TaskParams, layout: Layout, commit: str) -> Decision:
    """The task's winner, judged on the task's current test split."""
    record = winner(params, layout)
    return judge(client, layout.model_dir(record.cell, record.seed),
                 read_test_examples(layout.prepared), commit)


def judge(client: MlflowClient, folder: Path, examples: list[dict[str, Any]], commit: str
          ) -> Decision:
    """Register the model in `folder` as its task's challenger; make it champion if it is the
    first, or if it is significantly better than the champion on `examples` (the current
    test split)."""
    record = read_record(folder)
    task = record.task
    metric, _ = headline(record.family, record.labels)
    num, den = scores(Predictor(folder), examples, metric)
    champion = tracking.version_by_alias(client, task, tracking.CHAMPION)
    version = tracking.register_version(client, task, record.run_id, {
        "cell": record.cell, "seed": str(record.seed), "data_hash": record.data_hash,
        "git_commit": commit, "run_id": record.run_id, f"test_{metric}": f"{ratio(num, den):.6f}",
        "test_examples": str(len(examples))})
    tracking.set_alias(client, task, tracking.CHALLENGER, version.version)
    decision = Decision(task, version.version, record.cell, record.seed, metric,
                        ratio(num, den), None, None, None, "", promoted=True)
    if champion is not None:
        with tempfile.TemporaryDirectory(prefix="rnnbench-champion-") as tmp:
            uri = f"models:/{tracking.registered_name(task)}@{tracking.CHAMPION}"
            held = Predictor(tracking.download_model_folder(client, uri, Path(tmp)))
        num_b, den_b = scores(held, examples, metric)
        # whole split groups resampled (a film's snippets are not independent draws)
        groups = [str(ex.get("group", i)) for i, ex in enumerate(examples)]
        test = paired_bootstrap(*(by_group(x, groups) for x in (num, den, num_b, den_b)),
                                unit="test groups")
        decision = Decision(task, version.version, record.cell, record.seed, metric,
                            ratio(num, den), champion.version, ratio(num_b, den_b), test.p,
                            test.method, promoted=test.diff > 0 and test.p < ALPHA)
    tracking.tag_version(client, task, version.version, decision.tags())
    if decision.promoted:
        tracking.set_alias(client, task, tracking.CHAMPION, version.version)
    return decision
