"""The report over real short fits (the shared `trained` fixture, and three seeds): every
section in order, intervals and tests, and the HTML opening offline."""

import json
import re
import shutil
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from pipeline.config import load_params, parse_params
from pipeline.data.loading import EncodedSplit
from pipeline.data.records import SplitStats
from pipeline.data.text import encode_split
from pipeline.evaluation.evaluate import evaluate_cell
from pipeline.machine import cpu_name
from pipeline.model.record import read_record
from pipeline.report.assemble import write_report
from pipeline.report.card import TIMING_NOTE, card_table, timing
from pipeline.report.caveats import budget_words, majority_baseline, task_caveats
from pipeline.report.comparison import (
    Tests,
    compare_cells,
    grouping,
    holm,
    verdict,
    winner,
)
from pipeline.report.diagnostics import Flow, flow_words
from pipeline.report.longrange import interval, longrange_verdict
from pipeline.report.results import CellResult, TaskResult, entity_confusion, word_tag_baseline
from pipeline.report.tuning import Gain, power_words, verdict_change
from pipeline.scoring.stats import (
    Comparison,
    Summary,
    detectable_gap,
    seeds_needed,
    summarize,
)
from pipeline.tuning import fits
from tests.conftest import SEED, TASK, load_task, repo_params, write_params


def test_report_and_metrics_cover_every_cell(trained):
    params, layout, _, _ = trained
    text = (layout.reports / "comparison.md").read_text()
    for name in ("RNN", "LSTM", "GRU"):
        assert f"| {name} |" in text
    summary = json.loads((layout.reports / "summary.json").read_text())["tasks"][TASK]
    # the verdict claims what summary.json's tests support, no more
    if summary["winner"]:
        assert "wins** on test accuracy" in text
    else:
        assert "wins**" not in text and ("**No significant difference**" in text
                                         or "** on test accuracy (`=`" in text)
    assert summary["best"] in params.cells and summary["tiers"][0][0] == summary["best"]
    assert set(summary["cells"]) == set(params.cells) and summary["family"] == "classification"
    for cell in params.cells:
        metrics = json.loads(layout.test_metrics(cell, SEED).read_text())
        assert 0 <= metrics["accuracy"] <= 1 and metrics["num_parameters"] > 0
        # one seed: the interval comes from resampling the test split's movies (its groups)
        low, high = summary["cells"][cell]["accuracy_ci95"]
        assert low < metrics["accuracy"] < high and high - low < 0.5
        assert summary["cells"][cell]["accuracy_ci95_over"] == "test movies"
        assert f"[{low:.2%}, {high:.2%}] |" in text
    assert "accuracy: 95% CI (test sample)" in text
    assert f"- CPU of the fits: {cpu_name()}. The same commit and params" in text
    assert read_record(layout.model_dir(params.cells[0], SEED)).cpu == cpu_name()
    for cell in params.cells:  # one image per cell
        assert (layout.reports / "figures" / f"{TASK}_learning_curves_{cell}.png").stat(
        ).st_size > 10_000
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
    # then the decision card: every cell once, tier 1 first, score with interval and costs
    assert f"![decision card: {TASK}](figures/decision_card_{TASK}.png)" in head
    card = [line.split(" | ") for line in head.splitlines() if line.startswith(f"| {TASK} |")]
    assert sorted(row[2] for row in card) == ["GRU", "LSTM", "RNN"] and card[0][1] == "1"
    assert [int(row[1]) for row in card] == sorted(int(row[1]) for row in card)
    assert all(re.fullmatch(r"accuracy \d+\.\d% \[\d+\.\d%, \d+\.\d%\]", row[3])
               and row[4].endswith(" M") for row in card)
    # the card (one image per task); per task: by length, gradient flow, and one image per
    # cell of gates (LSTM, GRU), curves and confusions; the sweep, per problem: accuracy
    # against length, gradient flow and gates
    figures = sorted(set(re.findall(r"\]\((figures/[^)]+\.png)\)", text)))
    assert len(figures) == 1 + (2 + 2 + 3 + 3) + 2 + 2 * (1 + 2), figures
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
    assert "<table>" in html and "<strong>" in html
    assert not re.search(r'(src|href)="(https?:|figures/)', html) and "<script" not in html
    for s in sections:
        assert s.lstrip("#").strip().split(":")[0] in html
    # navigable: a viewport for phones, a table of contents whose every link resolves, and
    # the long reference sections folded
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    links = re.findall(r'<a href="#([^"]+)"', html)
    ids = set(re.findall(r' id="([^"]+)"', html))
    assert len(links) >= 3 and set(links) <= ids
    assert '<details id="provenance" class="provenance"><summary>Provenance</summary>' in html
    assert html.count("<summary>Settings</summary>") == 1
    # the figures' data, for `dvc plots show`
    plots = {p.name for p in (layout.reports / "plots").iterdir()}
    assert {f"{TASK}_gradient_flow.csv", f"{TASK}_by_length.csv", "longrange_recall.csv",
            "longrange_adding.csv"} <= plots
    summary = json.loads((layout.reports / "summary.json").read_text())
    assert set(summary["longrange"]["results"]) == {"recall", "adding"}
    flow = summary["tasks"][TASK]["gradient_flow"]["rnn"]
    assert flow["distance"][0] == 0 and flow["ratio"][0] == pytest.approx(1.0)


@pytest.mark.slow
def test_several_seeds_give_intervals_and_tests_over_seeds(prepared, tmp_path):
    shutil.copytree(prepared / "data" / TASK, tmp_path / "data" / TASK)  # not the sweep
    raw = yaml.safe_load((prepared / "params.yaml").read_text())
    raw.update(cells=["rnn", "gru"], seeds=[1, 2, 3])
    write_params(tmp_path, raw)
    params, layout = load_task(tmp_path)
    for cell in params.cells:
        for seed in params.seeds:
            fits.train(params, cell, layout, seed)
            evaluate_cell(params, cell, layout, seed)
    write_report(load_params(tmp_path / "params.yaml"), tmp_path)
    text = (layout.reports / "comparison.md").read_text()
    assert "accuracy: mean ± sd [95% CI]" in text and "(mean of 3 seeds)" in text
    assert "two-level bootstrap over 3 seeds" in text
    summary = json.loads((layout.reports / "summary.json").read_text())["tasks"][TASK]
    for cell in ("rnn", "gru"):
        c = summary["cells"][cell]
        assert set(c["seeds"]) == {"1", "2", "3"}
        values = [c["seeds"][s]["accuracy"] for s in ("1", "2", "3")]
        assert c["accuracy"] == pytest.approx(sum(values) / 3)
        low, high = c["accuracy_ci95"]
        assert low <= c["accuracy"] <= high and c["accuracy_ci95_over"] == "seeds and test movies"
    (comparison,) = summary["comparisons"]
    assert 0 <= comparison["p"] <= 1 and comparison["method"].startswith(
        "two-level bootstrap over 3 seeds")


# Verdicts and caveats on constructed results: each claim appears exactly where the numbers
# support it.

def record(epochs: int = 6, best: int = 4, limit: int = 10) -> SimpleNamespace:
    """What the caveats read of a model record."""
    return SimpleNamespace(epochs=epochs, best_epoch=best, best_val=0.5, monitor="val_acc",
                           params=SimpleNamespace(train=SimpleNamespace(max_epochs=limit,
                                                                        stop_at=None)))


def history(epochs: int = 6, best: int = 4, dip: bool = False) -> list[dict[str, float]]:
    """Validation accuracy per epoch, rising to `best` and falling after it; with `dip`, the
    epoch before the best falls first (one good epoch after a dip: not a climb)."""
    values = [0.5 + 0.01 * min(e, best) - 0.02 * max(e - best, 0) for e in range(1, epochs + 1)]
    if dip and best >= 3:
        values[best - 2] = values[best - 3] - 0.005
    return [{"epoch": e, "val_acc": v} for e, v in enumerate(values, start=1)]


def cell_result(cell: str, runs: list, score: Summary | None = None, **arrays) -> CellResult:
    """A CellResult with only what a test reads: its runs (test metrics, records) and score."""
    num = arrays.get("num")
    groups = arrays.get("groups", None if num is None else np.arange(np.shape(num)[-1]).astype(str))
    return CellResult(cell=cell, runs=runs, test=None, score=score, confusion=None,  # type: ignore[arg-type]
                      seed_num=num, seed_den=arrays.get("den"), groups=groups,  # type: ignore[arg-type]
                      unit=arrays.get("unit", "test examples"))


def result(cell: str, score: float, seeds: int = 1, dip: bool = False, **train) -> CellResult:
    run = SimpleNamespace(test=SimpleNamespace(accuracy=score), train=record(**train),
                          history=history(train.get("epochs", 6), train.get("best", 4), dip))
    return cell_result(cell, [run] * seeds, summarize([score] * seeds) if seeds > 1
                       else Summary(1, score, 0.0, None, None))


def pair_tests(results: list[CellResult], significant: set[tuple[str, str]]) -> Tests:
    """Pairwise tests: `significant` pairs (better, worse) at p = 0.01, others at p = 0.4."""
    out: Tests = {}
    for a in results:
        for b in results:
            if a is not b:
                diff = a.score.mean - b.score.mean
                sig = (a.cell, b.cell) in significant or (b.cell, a.cell) in significant
                out[a.cell, b.cell] = Comparison(diff, 0.01 if sig else 0.4, "t")
    return out


THREE = [result("lstm", 0.78), result("gru", 0.77), result("rnn", 0.74)]


@pytest.mark.parametrize(("significant", "head", "tiers"), [
    ({("lstm", "gru"), ("lstm", "rnn")}, "**LSTM wins** on test accuracy",
     [["lstm"], ["gru", "rnn"]]),
    ({("lstm", "rnn"), ("gru", "rnn")}, "**LSTM = GRU > RNN** on test accuracy",
     [["lstm", "gru"], ["rnn"]]),
    (set(), "**No significant difference** between the cells", [["lstm", "gru", "rnn"]]),
])
def test_the_verdict_names_a_winner_only_when_it_beats_every_cell(significant, head, tiers):
    t = pair_tests(THREE, significant)
    text = verdict(THREE, "accuracy", t)
    assert text.startswith(head)
    assert ("wins**" in text) == (winner(THREE, t) == "lstm")
    assert [[r.cell for r in tier] for tier in grouping(THREE, t).tiers] == tiers


@pytest.mark.parametrize(("significant", "letters", "words"), [
    # LSTM > RNN significant, LSTM = GRU and GRU = RNN not: "LSTM = GRU > RNN" would claim the
    # untested GRU > RNN
    ({("lstm", "rnn")}, {"lstm": "a", "gru": "ab", "rnn": "b"}, "**LSTM (a), GRU (ab), RNN (b)**"),
    # LSTM > GRU significant, GRU = RNN, LSTM vs RNN not: "LSTM > GRU = RNN" would claim LSTM > RNN
    ({("lstm", "gru")}, {"lstm": "a", "gru": "b", "rnn": "ab"}, "**LSTM (a), GRU (b), RNN (ab)**"),
    # only GRU > RNN significant: not "no significant difference"
    ({("gru", "rnn")}, {"lstm": "ab", "gru": "a", "rnn": "b"}, "**LSTM (ab), GRU (a), RNN (b)**"),
])
def test_a_verdict_claims_no_pair_its_tests_did_not_support(significant, letters, words):
    """The three constructed cases that the tiers of the best cell of each tier got wrong."""
    t = pair_tests(THREE, significant)
    g = grouping(THREE, t)
    assert g.tiers is None and g.letters == letters
    text = verdict(THREE, "accuracy", t)
    assert text.startswith(words) and "No significant difference" not in text
    assert " > " not in text.split(".")[0] and " = " not in text.split(".")[0]
    for a, b in [("lstm", "gru"), ("lstm", "rnn"), ("gru", "rnn")]:  # every pair, in words
        assert f"{a.upper()} vs {b.upper()}:" in text


@pytest.mark.parametrize("n", [2, 3, 5])
def test_every_grouping_is_exactly_what_the_pairwise_tests_say(n):
    """Every pattern of significant pairs among n cells: two cells share a letter if and only
    if their test is not significant, and tiers appear only where every cross-tier pair is
    significant in the ranked direction and no within-tier pair is."""
    cells = [result(f"c{i}", 0.9 - 0.01 * i) for i in range(n)]
    pairs = [(a.cell, b.cell) for i, a in enumerate(cells) for b in cells[i + 1:]]
    for mask in range(2 ** len(pairs)):
        significant = {pair for k, pair in enumerate(pairs) if mask >> k & 1}
        g = grouping(cells, pair_tests(cells, significant))
        for a, b in pairs:
            shared = bool(set(g.letters[a]) & set(g.letters[b]))
            assert shared == ((a, b) not in significant), (significant, g.letters)
        # tiers: the ranked cells cut into runs, no pair within a run significant, every pair
        # across runs significant; found by trying every cut
        fits = []
        for cuts in range(2 ** (n - 1)):
            tier_of, tier = {}, 0
            for i, r in enumerate(cells):
                tier += i > 0 and cuts >> (i - 1) & 1
                tier_of[r.cell] = tier
            if all(((a, b) in significant) == (tier_of[a] != tier_of[b]) for a, b in pairs):
                fits.append(tier_of)
        got = None if g.tiers is None else {r.cell: i for i, t in enumerate(g.tiers) for r in t}
        assert got == (fits[0] if fits else None), (significant, g.letters)


def test_holm_adjusts_each_p_value_by_its_rank_and_keeps_them_monotone():
    """Holm (1979) by hand: sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04)."""
    raw = [Comparison(0.01, p, "t") for p in (0.01, 0.04, 0.03)]
    assert holm(raw) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([Comparison(0.01, 0.6, "t"), Comparison(0.01, 0.02, "t")]) == [0.6, 0.04]
    assert holm([Comparison(0.01, 0.3, "t")]) == [0.3]


def test_a_one_seed_verdict_says_what_its_test_covers_and_asks_for_seeds():
    text = verdict(THREE, "accuracy", pair_tests(THREE, set()))
    assert "not whether another seed would keep it" in text and "Run 3 or more seeds" in text
    assert "seeds would detect" not in text  # no stored spread from older code stands in


def test_seeds_needed_come_from_the_runs_own_seeds_with_their_uncertainty():
    """Five seeds, LSTM - GRU per seed +1.5, -0.5, +1.0, +0.5, 0.0 points: mean 0.5, sd 0.79."""
    def cell(name: str, scores: list[float]) -> CellResult:
        runs = [SimpleNamespace(test=SimpleNamespace(accuracy=v), train=record())
                for v in scores]
        return cell_result(name, runs, summarize(scores))

    gru = [0.760, 0.770, 0.765, 0.768, 0.772]
    lstm = [g + d for g, d in zip(gru, [0.015, -0.005, 0.010, 0.005, 0.0], strict=True)]
    cells = [cell("lstm", lstm), cell("gru", gru), cell("rnn", [0.70] * 5)]
    text = verdict(cells, "accuracy", pair_tests(cells, {("lstm", "rnn"), ("gru", "rnn")}),
                   "accuracy")
    sd = float(np.std(np.array(lstm) - np.array(gru), ddof=1))
    n = seeds_needed(0.005, sd)
    assert n is not None and n > 5
    assert f"From these 5 seeds (per-seed differences spread {100 * sd:.2f} points" in text
    assert f"about {n} seeds (between " in text and "between LSTM and GRU at 80% power" in text
    low, high = re.search(r"between (\d+) and (\d+|more than 1000)\)", text).groups()
    assert int(low) < n and (high == "more than 1000" or int(high) > n)
    two = [cell(c.cell, [r.test.accuracy for r in c.runs][:2]) for c in cells]
    assert "2 seeds cannot say how many would separate LSTM and GRU" in verdict(
        two, "accuracy", pair_tests(two, {("lstm", "rnn"), ("gru", "rnn")}), "accuracy")
    settled = verdict(cells, "accuracy", pair_tests(cells, {("lstm", "gru"), ("lstm", "rnn"),
                                                             ("gru", "rnn")}), "accuracy")
    assert "seeds would detect" not in settled


def test_two_seeds_are_ranked_and_tested_on_the_same_statistic():
    """Mean of per-seed F1 ranks the cells; the test must compare that, not pooled F1."""
    def runs(*f1: float) -> list:
        return [SimpleNamespace(test=SimpleNamespace(entity_f1=v)) for v in f1]

    # seeds x examples: LSTM 0.30 and 0.50 per seed, GRU 0.35 and 0.40 (pooled, LSTM 0.40 and
    # GRU 0.375 would give another difference)
    a = cell_result("lstm", runs(0.30, 0.50), num=np.array([[30.0, 0.0], [0.0, 50.0]]),
                    den=np.array([[100.0, 0.0], [0.0, 100.0]]))
    b = cell_result("gru", runs(0.35, 0.40), num=np.array([[35.0, 0.0], [0.0, 40.0]]),
                    den=np.array([[100.0, 0.0], [0.0, 100.0]]))
    test = compare_cells(a, b, "entity_f1")
    assert test.diff == pytest.approx(0.025) and "2 seeds" in test.method
    assert "two-level bootstrap" in test.method


def test_tests_resample_the_groups_the_split_kept_whole():
    """40 snippets of 4 films, 10 each: the LSTM beats the GRU on one film only. Over
    examples the gap looks certain (p < 0.001); over films, which are what another test sample
    would draw anew, one film in four decides it and the test must not call it."""
    runs = [SimpleNamespace(test=SimpleNamespace(accuracy=0.0))]
    films = np.repeat(["a", "b", "c", "d"], 10)
    lstm = np.repeat([1.0, 1.0, 1.0, 0.0], 10)[None]
    gru = np.repeat([1.0, 1.0, 0.0, 0.0], 10)[None]
    ones = np.ones((1, 40))
    by_example = compare_cells(cell_result("lstm", runs, num=lstm, den=ones),
                               cell_result("gru", runs, num=gru, den=ones), "accuracy")
    by_film = compare_cells(
        cell_result("lstm", runs, num=lstm, den=ones, groups=films, unit="test movies"),
        cell_result("gru", runs, num=gru, den=ones, groups=films, unit="test movies"),
        "accuracy")
    assert by_example.diff == by_film.diff == pytest.approx(0.25)
    assert by_example.p < 0.001 and "40 test examples" in by_example.method
    assert by_film.p > 0.5 and "over 4 test movies" in by_film.method


STATS = SimpleNamespace(splits={"test": SplitStats.model_construct(
    label_counts={"pos": 60, "neg": 40})})


def caveats_of(cells: list[CellResult]) -> list[str]:
    return task_caveats(TaskResult(PARAMS, cells, STATS, None, "accuracy", "accuracy"))  # type: ignore[arg-type]


def test_a_cell_at_the_majority_baseline_did_not_learn_and_only_it():
    cells = [result("lstm", 0.75), result("rnn", 0.60)]
    caveats = caveats_of(cells)
    assert len(caveats) == 1 and caveats[0].startswith("RNN did not learn")
    assert "60.0%" in caveats[0] and "LSTM" not in caveats[0]
    assert majority_baseline(STATS, "entity_f1") == 0.0


@pytest.mark.parametrize(("runs", "expected"), [
    ({"epochs": 6, "best": 4}, None),
    ({"epochs": 10, "best": 7}, "LSTM ran every epoch allowed (10) without early stopping:"),
    ({"epochs": 10, "best": 10}, "LSTM still improving (better at each of the last 2 epochs)"),
    # the best epoch the last, after a dip (NER's RNN at epochs 9-11: 20.6, 17.7, 25.1)
    ({"epochs": 10, "best": 10, "dip": True}, "LSTM best at the last epoch, after a dip:"),
])
def test_only_a_cell_that_used_every_epoch_is_flagged(runs, expected):
    caveats = caveats_of([result("lstm", 0.8, **runs), result("gru", 0.79)])
    assert (caveats == []) == (expected is None)
    if expected:
        assert len(caveats) == 1 and expected in caveats[0] and "GRU" not in caveats[0]


RAW = repo_params()
# 10 epochs allowed, whatever the committed task gives (its own train section wins)
PARAMS = parse_params({**RAW, "task": {**RAW["task"], TASK: {
    **RAW["task"][TASK], "train": {**RAW["task"][TASK]["train"], "max_epochs": 10}}}}
                      ).for_task(TASK)


def test_sweep_cells_below_chance_are_reported_as_not_learning_and_only_they(trained):
    _, layout, _, _ = trained
    text = (layout.reports / "comparison.md").read_text()
    sweep = json.loads((layout.reports / "summary.json").read_text())["longrange"]
    expected = {(problem, int(n), cell)
                for problem, by_length in sweep["results"].items()
                for n, row in by_length.items() for cell, acc in row["accuracy"].items()
                if np.mean(acc) <= row["chance"] + 1e-9}
    assert {(d["problem"], d["length"], d["cell"]) for d in sweep["did_not_learn"]} == expected
    section = text.split("## Long-range memory")[1].split("## Provenance")[0]
    assert section.count("did not learn") == len(expected)


def test_gradient_flow_text_says_what_the_curves_show():
    """Constructed curves: the words name the measured values and who keeps the most, also
    when that contradicts the textbook (here the plain RNN keeps the most)."""
    def flow(per_step: float) -> Flow:
        return Flow(list(range(31)), [per_step ** k for k in range(31)], [256] * 31)

    words = flow_words({"rnn": flow(0.9), "lstm": flow(0.5), "gru": flow(0.1)})
    assert words.startswith("Measured here, k = 30 steps back: RNN 4.2e-02 (a factor of 10 "
                            "every 22 steps), LSTM 9.3e-10 (a factor of 10 every 3 steps), "
                            "GRU 1.0e-30 (a factor of 10 every 1 step).")
    assert words.endswith("At k = 30, RNN keeps the most of it and GRU the least.")
    flat = flow_words({"rnn": Flow([0, 1, 2], [1.0, 1.0, 1.0], [9, 9, 9])})
    assert "no steady fall" in flat
    # the adding-50 LSTM's shape: down ~100x by k = 20, then up 2.7e-3 -> 1.0e-2 by k = 49
    ks = list(range(50))
    turning = [10 ** (-k / 10) if k <= 20 else 1e-2 * 10 ** (-(49 - k) / 40 * 0.57)
               for k in ks]
    words = flow_words({"lstm": Flow(ks, turning, [256] * 50)})
    assert "factor of 10" not in words
    assert "(down to 1.0e-02 at k = 20, then up to 1.0e-02 at k = 49)" not in words
    assert "down to" in words and "then up to 1.0e-02 at k = 49" in words
    uneven = [1.0, 0.5, 0.45, 0.44, 1e-3, 9e-4, 8.5e-4, 8.4e-4]  # one cliff, flat around it
    assert "not at a steady rate" in flow_words({"rnn": Flow(list(range(8)), uneven, [9] * 8)})
    assert "too short" in flow_words({"rnn": Flow([0, 1], [1.0, 0.5], [9, 9])})
    # NER's GRU: 0.87 -> 0.30 over k = 1-30 is no "factor of 10 every 76 steps" (past the data)
    shallow = Flow(ks[:31], [0.87 * (0.30 / 0.87) ** ((k - 1) / 29) for k in ks[:31]], [9] * 31)
    assert "(down only 2.9-fold over k = 1-30)" in flow_words({"gru": shallow})
    # NER's LSTM: a factor of 10 in 4 steps, then one every 16: two rates, not one
    fast_slow = [10 ** -(k / 4 if k <= 4 else 1 + (k - 4) / 16) for k in ks[:31]]
    words = flow_words({"lstm": Flow(ks[:31], fast_slow, [9] * 31)})
    assert "factor of 10" not in words and "not at a steady rate" in words
    # POS: LSTM keeps more only at the last few distances, GRU at most of them
    gru = [10 ** (-k / 6) for k in ks[:38]]
    lstm = [10 ** (-k / 5) if k <= 33 else gru[k] * 2 for k in ks[:38]]
    words = flow_words({"lstm": Flow(ks[:38], lstm, [9] * 38), "gru": Flow(ks[:38], gru, [9] * 38)})
    assert "At k = 37, LSTM keeps the most of it and GRU the least." in words
    assert words.endswith("The curves cross: GRU keeps the most at 33 of the 37 distances.")


def test_entity_confusion_counts_each_gold_entity_once():
    rows = [{"example": "0", "actual": a, "predicted": p} for a, p in [
        ("B-person", "B-person"), ("I-person", "I-person"),  # right
        ("O", "B-loc"),                                          # spurious
        ("B-loc", "B-person"),                                   # loc taken for a person
        ("B-loc", "B-loc"), ("I-loc", "O"),                      # loc cut short: missed
    ]]
    c = entity_confusion(rows, ["O", "B-person", "I-person", "B-loc", "I-loc"])
    assert c.rows == ["loc", "person"] and c.columns == ["loc", "person", "missed"]
    assert c.counts == [[0, 1, 1], [0, 1, 0]] and c.spurious == 2


def test_the_decision_card_lists_tiers_best_first_with_costs():
    cost = SimpleNamespace(num_parameters=1.5e6, train_seconds=42.0,
                           inference_examples_per_s=9000.0)
    cells = [replace(r, score=Summary(1, r.score.mean, 0.0, r.score.mean - 0.01,
                                      r.score.mean + 0.01),
                     test=cost, runs=[SimpleNamespace(test=cost)]) for r in THREE]
    groups = grouping(cells, pair_tests(cells, {("lstm", "rnn"), ("gru", "rnn")}))
    table = card_table([("sentiment", "accuracy", groups)])
    assert table[2:] == [
        "| sentiment | 1 | LSTM | accuracy 78.0% [77.0%, 79.0%] | 1.50 M | 42 ¹ | 9,000 ¹ |",
        "| sentiment | 1 | GRU | accuracy 77.0% [76.0%, 78.0%] | 1.50 M | 42 ¹ | 9,000 ¹ |",
        "| sentiment | 2 | RNN | accuracy 74.0% [73.0%, 75.0%] | 1.50 M | 42 ¹ | 9,000 ¹ |"]


def test_the_report_says_at_which_settings_the_cells_were_compared():
    """The verdicts hold at the settings the cells met, which the report names."""
    from pipeline.report.render import settings_words

    raw = repo_params()
    assert "not tuned per cell (`tune.enabled: false`)" in settings_words(parse_params(raw))
    raw = {**raw, "overrides": {**raw["overrides"], "rnn": {"lr": 0.001}}}
    assert "with `overrides` for rnn" in settings_words(parse_params(raw))
    raw = {**raw, "tune": {**raw["tune"], "enabled": True}}
    assert settings_words(parse_params(raw)).startswith("each cell at the best settings")


def test_tuning_changed_the_verdict_only_where_a_cells_change_was_tested_significant():
    """Untuned LSTM > RNN, tuned no difference: two verdicts cut at 0.05 on their own noise.
    That alone is not a change tuning made; a cell whose tuned score moved significantly is."""
    before = grouping(THREE, pair_tests(THREE, {("lstm", "rnn")}))
    after = grouping(THREE, pair_tests(THREE, set()))
    quiet = {c: Gain(0.005, 0.6, "t", 0.02) for c in ("lstm", "gru", "rnn")}
    changed, words = verdict_change(before, after, quiet)
    assert not changed and "no evidence that tuning changed the ranking" in words
    loud = {**quiet, "rnn": Gain(0.03, 0.01, "t", 0.02)}
    changed, words = verdict_change(before, after, loud)
    assert changed and words.startswith("Tuning changed the verdict") and \
        "RNN +3.0 points (p = 0.0100)" in words
    assert verdict_change(after, after, loud) == (False, "Tuning did not change the verdict.")
    assert "2.0 points (LSTM)" in power_words(quiet)
    assert "no power can be estimated" in power_words(
        {c: Gain(0.0, 1.0, "t", None) for c in quiet})


def test_the_gap_a_test_can_detect_matches_the_seeds_it_needs():
    for seeds in (3, 5, 10):
        gap = detectable_gap(0.01, seeds)
        assert seeds_needed(gap * 1.001, 0.01) == seeds < seeds_needed(gap * 0.95, 0.01)
    assert detectable_gap(0.01, 1) is None and detectable_gap(0.0, 3) == 0.0


def test_a_verdict_whose_cells_all_still_improved_says_it_ranks_learning_speed():
    """WSJ POS at 2 epochs: 'RNN wins' at 52-61% with every cell still climbing is a ranking
    of learning speed at that budget, and the verdict must say so itself."""
    climbing = [result(c, v, epochs=2, best=2, limit=2)
                for c, v in (("rnn", 0.61), ("lstm", 0.55), ("gru", 0.52))]
    words = budget_words(TaskResult(PARAMS, climbing, STATS, None, "accuracy", "accuracy"))  # type: ignore[arg-type]
    assert "Every cell was still improving at its last allowed epoch (2)" in words
    assert "how far each learns in 2 epochs, not what it can reach" in words
    dipped = [*climbing[:2], result("gru", 0.52, epochs=4, best=4, limit=4, dip=True)]
    words = budget_words(TaskResult(PARAMS, dipped, STATS, None, "accuracy", "accuracy"))  # type: ignore[arg-type]
    assert "Every cell had its best validation epoch at its last allowed one" in words
    assert "still improving" not in words
    one_stopped = [*climbing[:2], result("gru", 0.52, epochs=2, best=1, limit=2)]
    assert budget_words(TaskResult(PARAMS, one_stopped, STATS, None, "accuracy", "accuracy")) == ""  # type: ignore[arg-type]


def test_a_tagger_no_better_than_a_per_word_lookup_is_said_to_have_learned_nothing_of_context():
    # training: "the" is DET 3 times and NOUN once, "run" VERB twice and NOUN once; test: the run
    train = EncodedSplit(encode_split([[2, 3], [2, 3], [2, 3], [2]], tags=[[0, 2], [0, 2],
                                                                          [0, 1], [1]]))
    test = EncodedSplit(encode_split([[2, 3], [4, 2]], tags=[[0, 2], [1, 0]]))
    # lookup: the->0, run->2, unseen word 4 -> the most frequent tag overall (0): 3 of 4 right
    assert word_tag_baseline(train, test, ["DET", "NOUN", "VERB"], "accuracy") == 0.75
    tagged = [result("lstm", 0.80), result("rnn", 0.70)]
    task = TaskResult(PARAMS, tagged, STATS, None, "accuracy", "token accuracy", 0.75)  # type: ignore[arg-type]
    caveats = task_caveats(task)
    assert len(caveats) == 1 and caveats[0].startswith("RNN learned nothing beyond a lookup")
    assert "(75.0%; the most frequent tag alone: 60.0%)" in caveats[0]
    # entity F1 of a lookup: B-PER on "ann" (seen as B-PER twice), O elsewhere
    bio = ["B-PER", "I-PER", "O"]
    train = EncodedSplit(encode_split([[5, 6], [5]], tags=[[0, 2], [0]]))
    test = EncodedSplit(encode_split([[5, 6], [6, 5]], tags=[[0, 2], [0, 1]]))
    # predicted: [B-PER, O], [O, B-PER]; gold: (PER,0,1) and (PER,0,2): 1 tp, 1 fp, 1 fn
    assert word_tag_baseline(train, test, bio, "entity_f1") == pytest.approx(0.5)


def test_the_long_range_verdict_names_the_budget_and_the_cells_still_improving():
    """An RNN still climbing at its last epoch (0.194 -> 0.279 over epochs 12-15) has not
    shown where its memory ends: the verdict says so where it says 'solved up to'."""
    def row(rnn: float, out: list[str], rising: list[str], last: list[str] | None = None) -> dict:
        acc = {"rnn": [rnn], "lstm": [0.995], "gru": [0.993]}
        return {"accuracy": acc, "chance": 0.1, "out_of_epochs": out, "still_improving": rising,
                "best_at_last": rising if last is None else last,
                "ci95": {c: list(interval(a, 800)) for c, a in acc.items()}}

    cells = ["rnn", "lstm", "gru"]
    results = {"adding": {10: row(0.95, ["rnn"], []), 50: row(0.279, ["rnn"], ["rnn"])}}
    words = longrange_verdict(results, cells, 15)
    assert words.startswith("solved (>= 90% test accuracy) within 15 epochs: adding: RNN up to "
                            "10 steps, LSTM up to 50 steps")
    # length 10 was solved: its spent budget is no caveat; length 50 was not
    assert words.endswith("; unsolved when the 15 epochs ran out: RNN at adding 50 (still "
                          "improving), so more (`longrange.train.max_epochs`) may move the "
                          "limit.")
    stalled = longrange_verdict({"adding": {10: row(0.95, [], []),
                                            50: row(0.24, ["rnn"], [])}}, cells, 15)
    # past its best (adding-50's RNN: best at epoch 12 of 15): more epochs promise nothing
    assert stalled.endswith("ran out: RNN at adding 50 (past its best validation epoch).")
    jumped = longrange_verdict({"adding": {10: row(0.95, [], []),
                                           50: row(0.24, ["rnn"], [], ["rnn"])}}, cells, 15)
    assert "RNN at adding 50 (best at its last epoch), so more" in jumped
    assert "ran out" not in longrange_verdict(
        {"adding": {10: row(0.95, [], []), 50: row(0.279, [], [])}}, cells, 15)
    low, high = interval([0.5], 100)  # Wilson by hand: 0.5 -/+ 0.0962
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    for solved in (1.0, 0.0):  # Wilson's bound is the score itself, up to a rounding
        low, high = interval([solved], 800)
        assert low <= solved <= high and high - low < 0.01
    low, high = interval([0.7, 0.8, 0.9], 100)  # over seeds: t(2) 4.303 x 0.1 / sqrt(3)
    assert (low, high) == pytest.approx((0.8 - 0.2484, 0.8 + 0.2484), abs=1e-3)


def test_cost_columns_carry_their_spread_or_say_they_are_one_pass():
    def timed(*seconds: float) -> CellResult:
        runs = [SimpleNamespace(test=SimpleNamespace(train_seconds=s)) for s in seconds]
        return cell_result("gru", runs)

    assert timing(timed(84.04), "train_seconds", "{:.0f}") == "84 ¹"
    assert timing(timed(80.0, 90.0, 100.0), "train_seconds", "{:.0f}") == "90 ± 10"
    assert "¹: a single pass" in TIMING_NOTE
