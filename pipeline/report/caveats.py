"""Caveats generated from the results themselves, each only where it applies: a cell that did
not beat the majority-class baseline did not learn (whatever else the report shows of it), a
tagger no better than a per-word lookup learned nothing from context, and a cell that used
every epoch it was allowed may still have been improving."""

from __future__ import annotations

from pipeline.data.records import DataStats
from pipeline.model.record import TrainRecord
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
    words = task.word_baseline
    for r in results:
        if did_not_learn(r.score.mean, baseline):
            out.append(f"{CELL_NAMES[r.cell]} did not learn: its test "
                       f"{metric.replace('_', ' ')} {r.score.mean:.1%} is no better than "
                       f"always predicting the most frequent label ({baseline:.1%}); read "
                       "nothing else of it as a property of the cell")
        elif words is not None and did_not_learn(r.score.mean, words):
            out.append(f"{CELL_NAMES[r.cell]} learned nothing beyond a lookup: its test "
                       f"{metric.replace('_', ' ')} {r.score.mean:.1%} is no better than "
                       "tagging each word with its most frequent tag in training "
                       f"({words:.1%}; the most frequent tag alone: {baseline:.1%}); read "
                       "nothing of it as what the cell's memory of context adds")
    limit = params.train.max_epochs
    full, rising = out_of_epochs(task)
    if full:
        out.append(f"{names(full)} ran every epoch allowed ({limit}) without early stopping"
                   + (f"; {names(rising)} still improving at the last epoch" if rising else "")
                   + f": more epochs (`task.{params.name}.train.max_epochs`) may change the "
                   "ranking")
    return out


def ran_out(record: TrainRecord) -> bool:
    """Stopped by the epoch budget: neither early stopping nor `stop_at` ended the fit."""
    train = record.params.train
    reached = train.stop_at is not None and record.best_val >= train.stop_at
    return record.epochs >= train.max_epochs and not reached


def climbing(record: TrainRecord) -> bool:
    """Stopped by the budget with its best validation epoch the last: still improving."""
    return ran_out(record) and record.best_epoch == record.epochs


def out_of_epochs(task: TaskResult) -> tuple[list[str], list[str]]:
    """The cells with a seed that ran every epoch allowed, and of those the ones with a seed
    still improving when stopped."""
    full = [r.cell for r in task.cells if any(ran_out(run.train) for run in r.runs)]
    rising = [r.cell for r in task.cells if any(climbing(run.train) for run in r.runs)]
    return full, rising


def budget_words(task: TaskResult) -> str:
    """For the verdict itself, where every cell was still improving at its last allowed epoch:
    the ranking is then of how far each got in that many epochs, not of what it can reach."""
    # a cell counts when at least half its seeds were still climbing
    if not task.cells or not all(2 * sum(climbing(run.train) for run in r.runs) >= len(r.runs)
                                 for r in task.cells):
        return ""
    limit = task.cells[0].runs[0].train.params.train.max_epochs
    seeds = len(task.cells[0].runs)
    most = f" in at least half of its {seeds} seeds" if seeds > 1 else ""
    return (f" Every cell was still improving at its last allowed epoch ({limit}){most}: this "
            f"ranks how far each learns in {limit} epochs, not what it can reach "
            f"(`task.{task.params.name}.train.max_epochs`).")
