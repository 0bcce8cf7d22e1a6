"""The comparison report, assembled: per task a section, the long-range sweep, provenance;
written whole to reports/ and attached to each task's comparison run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pipeline import tracking
from pipeline.config import Family, Params, TaskParams
from pipeline.data.loading import EncodedSplit
from pipeline.files import atomic_dir
from pipeline.paths import Layout, reports_dir
from pipeline.report.card import card_table, plot_card, plot_task_cards
from pipeline.report.caveats import budget_words, task_caveats
from pipeline.report.comparison import by_length, grouping, pairwise, verdict
from pipeline.report.diagnostics import diagnostics_section
from pipeline.report.figures import (
    plot_by_length,
    plot_confusions,
    plot_context_cut,
    plot_learning_curves,
    write_series,
)
from pipeline.report.language_model import (
    lm_summary,
    lm_tests,
    lm_verdict,
    read_baselines,
    read_context_curves,
    render_language_model,
)
from pipeline.report.longrange import collect_longrange, longrange_section
from pipeline.report.render import provenance, render_html, render_markdown
from pipeline.report.results import CellResult, collect_task
from pipeline.report.summary import ReportSummary, write_summary
from pipeline.report.task import Findings, render_task, task_summary
from pipeline.report.tuning import tuning_section


def write_report(params: Params, root: Path) -> Path:
    """reports/comparison.md (and .html, self-contained), figures/, plots/ (the figures' data
    for `dvc plots show`) and summary.json over every task and the long-range sweep; logged to
    MLflow with each task's comparison run."""
    reports = reports_dir(root)
    sections, verdicts, summary, parents, data = {}, {}, {}, [], []
    cpus: set[str] = set()
    card = []  # per task: its name, the metric's name, what the tests support
    with atomic_dir(reports) as out:
        figures, plots = out / "figures", out / "plots"
        figures.mkdir()
        plots.mkdir()
        for name in params.tasks:
            tp, layout = params.for_task(name), Layout(root, name)
            task = collect_task(tp, layout)
            results, metric, label = task.cells, task.metric, task.label
            plot_learning_curves(results, figures, f"{name}_learning_curves")
            parents += task.parent_runs
            cpus.update(run.train.cpu or "not recorded" for r in results for run in r.runs)
            data.append((name, f"`{task.source.source}` (`{task.source.sha256}`)",
                         task.first.data_hash))
            if task.stats.family == Family.LANGUAGE_MODEL:
                baselines = read_baselines(layout, results[0].groups)
                ngram = next(b for b in baselines if b.name == "kneser_ney")
                tests, versus = lm_tests(results, ngram)
                verdicts[name] = lm_verdict(results, tests, versus, ngram) + budget_words(task)
                card.append((name, label, grouping(results, tests)))
                context = read_context_curves(task, layout)
                plot_context_cut(context.perplexity, figures / f"{name}_context.png")
                ks = list(next(iter(context.perplexity.values())))
                write_series(plots / f"{name}_context.csv", "context", ks,
                             {c: list(v.values()) for c, v in context.perplexity.items()})
                lm_tuning, lm_tuning_summary, change = task_tuning(
                    tp, layout, results, metric, label, figures / f"{name}_tuning.png")
                verdicts[name] += change
                sections[name] = [*render_language_model(task, tests, versus, baselines,
                                                         context, verdicts[name]), *lm_tuning]
                summary[name] = {**lm_summary(task, tests, versus, baselines, context),
                                 **({"tuning": lm_tuning_summary} if lm_tuning_summary else {})}
                continue
            plot_confusions(results, label, figures, f"{name}_confusion_matrices")
            lengths = by_length(results, EncodedSplit(layout.split("test")).lengths.numpy())
            plot_by_length(lengths, label, figures / f"{name}_by_length.png")
            write_series(plots / f"{name}_by_length.csv", "tokens",
                         [b.tokens for b in lengths.buckets], lengths.cells)
            diagnostics, diag_summary = diagnostics_section(name, layout, tp.cells, tp.seeds,
                                                            figures, plots)
            tests = pairwise(results, metric)
            verdicts[name] = verdict(results, label, tests, metric) + budget_words(task)
            card.append((name, label, grouping(results, tests)))
            tuning, tuning_summary, change = task_tuning(
                tp, layout, results, metric, label, figures / f"{name}_tuning.png")
            verdicts[name] += change
            found = Findings(lengths, tests, verdicts[name], task_caveats(task), diagnostics,
                             tuning)
            sections[name] = render_task(task, found)
            summary[name] = {**task_summary(task, found), **diag_summary,
                             **({"tuning": tuning_summary} if tuning_summary else {})}
        sweep = collect_longrange(params, root)
        longrange, long_summary = None, {}
        if sweep is not None:
            lines, long_summary = longrange_section(params, root, sweep, figures, plots)
            longrange = (lines, long_summary["verdict"])
            data += long_summary.pop("data")
        plot_card(card, figures / "decision_card.png")
        plot_task_cards(card, figures, "decision_card")
        markdown = render_markdown(params, sections, verdicts, card_table(card), longrange,
                                   provenance(params, root, data, sorted(cpus)))
        (out / "comparison.md").write_text(markdown, encoding="utf-8")
        (out / "comparison.html").write_text(render_html(markdown, out), encoding="utf-8")
        write_summary(out, ReportSummary(tasks=summary,
                                         longrange=long_summary if sweep else None))

    client = tracking.client_for(params, root)
    for parent in parents:  # each task's comparison run carries the whole report
        tracking.ensure_run(client, parent)
        tracking.log_files(client, parent, [(reports, "report")])
    print(f"report: {reports / 'comparison.md'}", file=sys.stderr)
    return reports / "comparison.md"


def task_tuning(tp: TaskParams, layout: Layout, results: list[CellResult], metric: str,
                label: str, figure: Path) -> tuple[list[str], dict[str, Any], str]:
    """With tuning on, the task's Tuning subsection, its summary.json entry and the sentence
    its verdict gains (with a leading space); with tuning off, nothing."""
    if not tp.tuned:
        return [], {}, ""
    lines, summary, change = tuning_section(tp, layout, results, metric, label, figure)
    return lines, summary, " " + change
