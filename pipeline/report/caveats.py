"""Caveats generated from the results themselves, each only where it applies: a cell that did
not beat the majority-class baseline did not learn (whatever else the report shows of it),
and a cell that used every epoch it was allowed may still have been improving."""

from __future__ import annotations

from pipeline.data.records import DataStats
from pipeline.report.figures import CELL_NAMES
from pipeline.report.results import TaskResult


def majority_baseline(stats: DataStats, metric: str) -> float:
    """The score of always predicting the test split's most frequent label (tag, for token
    accuracy); an all-`O` tagger finds no entity, so entity F1's baseline is 0."""
    if metric == "entity_f1":
        return 0.0
    return stats.splits["test"].majority()


def did_not_learn(score: float, baseline: float) -> bool:
    return score <= baseline + 1e-9


def names(cells: list[str]) -> str:
    """`RNN`, `RNN and GRU`, `RNN, LSTM and GRU`."""
    shown = [CELL_NAMES[c] for c in cells]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def task_caveats(task: TaskResult) -> list[str]:
    """One sentence per caveat that holds for this task's results."""
    out = []
    params, results, metric = task.params, task.cells, task.metric
    baseline = majority_baseline(task.stats, metric)
    for r in results:
        if did_not_learn(r.score.mean, baseline):
            out.append(f"{CELL_NAMES[r.cell]} did not learn: its test "
                       f"{metric.replace('_', ' ')} {r.score.mean:.1%} is no better than "
                       f"always predicting the most frequent label ({baseline:.1%}); read "
                       "nothing else of it as a property of the cell")
    limit = params.train.max_epochs
    full = [r.cell for r in results
            if any(run.train.epochs >= run.train.params.train.max_epochs for run in r.runs)]
    rising = [r.cell for r in results if r.cell in full
              and any(run.train.best_epoch == run.train.epochs for run in r.runs)]
    if full:
        out.append(f"{names(full)} ran every epoch allowed ({limit}) without early stopping"
                   + (f"; {names(rising)} still improving at the last epoch" if rising else "")
                   + f": more epochs (`task.{params.name}.train.max_epochs`) may change the "
                   "ranking")
    return out
