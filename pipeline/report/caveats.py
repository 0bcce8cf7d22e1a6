"""Caveats generated from the results themselves, each only where it applies: a cell that did
not beat the majority-class baseline did not learn (whatever else the report shows of it), a
tagger no better than a per-word lookup learned nothing from context, and a cell that used
every epoch it was allowed may still have been improving."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from pipeline.data.records import DataStats
from pipeline.model.record import TrainRecord, lower_is_better
from pipeline.report.figures import CELL_NAMES
from pipeline.report.results import RunResult, TaskResult


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
    results, metric = task.cells, task.metric
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
    budget = budget_caveat(task)
    return [*out, budget] if budget else out


def ran_out(record: TrainRecord) -> bool:
    """Stopped by the epoch budget: neither early stopping nor `stop_at` ended the fit."""
    train = record.params.train
    reached = train.stop_at is not None and record.best_val >= train.stop_at
    return record.epochs >= train.max_epochs and not reached


RISING_EPOCHS = 2  # "still improving": better at each of this many last epochs


def best_at_last(record: TrainRecord) -> bool:
    """Stopped by the budget with its best validation epoch the last."""
    return ran_out(record) and record.best_epoch == record.epochs


def climbing(record: TrainRecord, history: list[dict[str, float]]) -> bool:
    """Best at the last epoch and better at each of the RISING_EPOCHS before it (each epoch
    there is, in a shorter fit): still improving. One good epoch after a dip is not a climb
    (NER's RNN at epochs 9-11: entity F1 20.6, 17.7, 25.1)."""
    if not best_at_last(record):
        return False
    values = [h[record.monitor] for h in sorted(history, key=lambda h: h["epoch"])
              if h.get(record.monitor) is not None]
    last = values[-(RISING_EPOCHS + 1):]
    sign = -1.0 if lower_is_better(record.monitor) else 1.0
    return len(last) > 1 and all(sign * (b - a) > 0 for a, b in pairwise(last))


def out_of_epochs(task: TaskResult) -> tuple[list[str], list[str], list[str]]:
    """The cells with a seed that ran every epoch allowed; of those, the ones with a seed
    still improving when stopped, and the others with a seed best at its last epoch all the
    same (after a dip)."""
    full = [r.cell for r in task.cells if any(ran_out(run.train) for run in r.runs)]
    rising = [r.cell for r in task.cells
              if any(climbing(run.train, run.history) for run in r.runs)]
    dipped = [r.cell for r in task.cells if r.cell not in rising
              and any(best_at_last(run.train) for run in r.runs)]
    return full, rising, dipped


def budget_caveat(task: TaskResult) -> str | None:
    """The cells the epoch budget cut off, and which of them were still improving."""
    full, rising, dipped = out_of_epochs(task)
    if not full:
        return None
    params = task.params
    return (f"{names(full)} ran every epoch allowed ({params.train.max_epochs}) without early "
            "stopping"
            + (f"; {names(rising)} still improving (better at each of the last "
               f"{RISING_EPOCHS} epochs)" if rising else "")
            + (f"; {names(dipped)} best at the last epoch, after a dip" if dipped else "")
            + f": more epochs (`task.{params.name}.train.max_epochs`) may change the ranking")


def budget_words(task: TaskResult) -> str:
    """For the verdict itself, where every cell had its best validation epoch at its last
    allowed one: the ranking is then of how far each got in that many epochs, not of what it
    can reach. "Still improving" only where every cell was (climbing)."""

    def most(test: Callable[[RunResult], bool]) -> bool:  # at least half of each cell's seeds
        return bool(task.cells) and all(2 * sum(map(test, r.runs)) >= len(r.runs)
                                        for r in task.cells)

    if not most(lambda run: best_at_last(run.train)):
        return ""
    limit = task.cells[0].runs[0].train.params.train.max_epochs
    seeds = len(task.cells[0].runs)
    half = f" in at least half of its {seeds} seeds" if seeds > 1 else ""
    what = ("was still improving at its last allowed epoch"
            if most(lambda run: climbing(run.train, run.history))
            else "had its best validation epoch at its last allowed one")
    return (f" Every cell {what} ({limit}){half}: this ranks how far each learns in {limit} "
            f"epochs, not what it can reach (`task.{task.params.name}.train.max_epochs`).")
