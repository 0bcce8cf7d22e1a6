"""The report over real short fits (the shared `trained` fixture, and three seeds): every
section in order, intervals and tests, and the HTML opening offline."""

import json
import re
import shutil

import pytest
import yaml

from pipeline.config import load_params
from pipeline.evaluation.evaluate import evaluate_cell
from pipeline.report.assemble import write_report
from pipeline.training.fit import train_cell
from tests.conftest import SEED, TASK, load_task, write_params


def test_report_and_metrics_cover_every_cell(trained):
    params, layout, _, _ = trained
    text = (layout.reports / "comparison.md").read_text()
    for name in ("RNN", "LSTM", "GRU"):
        assert f"| {name} |" in text
    assert "wins** on test accuracy" in text
    summary = json.loads((layout.reports / "summary.json").read_text())["tasks"][TASK]
    assert set(summary["cells"]) == set(params.cells) and summary["family"] == "classification"
    for cell in params.cells:
        metrics = json.loads(layout.test_metrics(cell, SEED).read_text())
        assert 0 <= metrics["accuracy"] <= 1 and metrics["num_parameters"] > 0
        # one seed: the interval comes from resampling the test examples
        low, high = summary["cells"][cell]["accuracy_ci95"]
        assert low < metrics["accuracy"] < high and high - low < 0.5
        assert summary["cells"][cell]["accuracy_ci95_over"] == "test examples"
        assert f"[{low:.2%}, {high:.2%}] |" in text
    assert "accuracy: 95% CI (test sample)" in text
    assert (layout.reports / "figures" / f"{TASK}_learning_curves.png").stat().st_size > 10_000
    # accuracy by length: quartile buckets that cover the test split, one value per cell
    lengths = summary["by_length"]
    test_size = json.loads(layout.test_metrics("rnn", SEED).read_text())["test_examples"]
    assert sum(b["examples"] for b in lengths["buckets"]) == test_size
    assert 2 <= len(lengths["buckets"]) <= 4
    assert all(len(v) == len(lengths["buckets"]) and all(0 <= x <= 1 for x in v)
               for v in lengths["cells"].values())
    assert "### Accuracy by length" in text


def test_report_has_every_section_in_order_and_the_html_opens_offline(trained):
    _params, layout, _, _ = trained
    text = (layout.reports / "comparison.md").read_text()
    sections = [f"## {TASK}:", "### Significance", "### Accuracy by length",
                "### Gradient flow through time", "### Gates", "### Learning curves",
                "### Confusion matrices", "### Per label", "### Data", "### Settings",
                "## Long-range memory: synthetic tasks", "### Gradient flow and gates: recall",
                "### Gradient flow and gates: adding", "## Provenance"]
    where = [text.find(s) for s in sections]
    assert -1 not in where and where == sorted(where), dict(zip(sections, where, strict=True))
    # verdicts first: every task's, then the synthetic sweep's
    head = text[: where[0]]
    assert f"- **{TASK}**: **" in head and "- **long range** (synthetic): solved" in head
    # per task: by length, gradient flow, gates, curves, confusions; the sweep: accuracy
    # against length, and per problem gradient flow and gates
    figures = sorted(set(re.findall(r"\]\((figures/[^)]+\.png)\)", text)))
    assert len(figures) == 5 + 1 + 2 * 2, figures
    assert all((layout.reports / f).stat().st_size > 5_000 for f in figures)
    # the replayed equations match PyTorch's kernels on the trained weights
    assert text.count("(ok) |") == 3 * 3 and "ABOVE" not in text
    # provenance: the commit (none here: not a git repo), every data hash, params.yaml itself
    assert "- Code: git commit `unknown`" in text
    for name in (TASK, "recall_6", "recall_12", "adding_6", "adding_12"):
        assert f"| {name} |" in text.split("## Provenance")[1]
    assert (layout.root / "params.yaml").read_text().strip() in text
    # the store as any clone finds it: relative to the project, never this machine's path
    assert "- Runs: MLflow store `sqlite:///mlruns/mlflow.db`" in text
    assert str(layout.root) not in text
    # the HTML opens offline: every figure embedded, nothing fetched, every section there
    html = (layout.reports / "comparison.html").read_text()
    assert html.count('src="data:image/png;base64,') == text.count("](figures/")
    assert "<table>" in html and "wins</strong>" in html
    assert not re.search(r'(src|href)="(https?:|figures/)', html) and "<script" not in html
    for s in sections:
        assert s.lstrip("#").strip().split(":")[0] in html
    # the figures' data, for `dvc plots show`
    plots = {p.name for p in (layout.reports / "plots").iterdir()}
    assert {f"{TASK}_gradient_flow.csv", f"{TASK}_by_length.csv", "longrange_recall.csv",
            "longrange_adding.csv"} <= plots
    summary = json.loads((layout.reports / "summary.json").read_text())
    assert set(summary["longrange"]["results"]) == {"recall", "adding"}
    flow = summary["tasks"][TASK]["gradient_flow"]["rnn"]
    assert flow["distance"][0] == 0 and flow["ratio"][0] == pytest.approx(1.0)


def test_several_seeds_give_intervals_and_tests_over_seeds(prepared, tmp_path):
    shutil.copytree(prepared / "data" / TASK, tmp_path / "data" / TASK)  # not the sweep
    raw = yaml.safe_load((prepared / "params.yaml").read_text())
    raw.update(cells=["rnn", "gru"], seeds=[1, 2, 3])
    write_params(tmp_path, raw)
    params, layout = load_task(tmp_path)
    for cell in params.cells:
        for seed in params.seeds:
            train_cell(params, cell, layout, seed)
            evaluate_cell(params, cell, layout, seed)
    write_report(load_params(tmp_path / "params.yaml"), tmp_path)
    text = (layout.reports / "comparison.md").read_text()
    assert "accuracy: mean ± sd [95% CI]" in text and "(mean of 3 seeds)" in text
    assert "paired t-test over 3 seeds" in text
    summary = json.loads((layout.reports / "summary.json").read_text())["tasks"][TASK]
    for cell in ("rnn", "gru"):
        c = summary["cells"][cell]
        assert set(c["seeds"]) == {"1", "2", "3"}
        values = [c["seeds"][s]["accuracy"] for s in ("1", "2", "3")]
        assert c["accuracy"] == pytest.approx(sum(values) / 3)
        low, high = c["accuracy_ci95"]
        assert low <= c["accuracy"] <= high and c["accuracy_ci95_over"] == "seeds"
    (comparison,) = summary["comparisons"]
    assert 0 <= comparison["p"] <= 1 and comparison["method"] == "paired t-test over 3 seeds"
