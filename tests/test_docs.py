"""The README and docs/: generated figures current, quoted figures true, relative links whole."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline import docs

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_every_generated_block_is_what_the_command_writes_now():
    stale = [str(path.relative_to(ROOT)) for path in docs.stale(ROOT)]
    assert stale == [], f"{stale}: figures differ from the results files; run `{docs.COMMAND}`"


def test_every_block_names_a_renderer():
    names = {m.group(2) for path in docs.doc_files(ROOT)
             for m in docs.BLOCK.finditer(path.read_text())}
    assert names <= set(docs.BLOCKS), names - set(docs.BLOCKS)
    assert {"verdicts", "results-table", "make-run-times", "make-run-history"} <= names


def test_every_figure_quoted_in_prose_matches_its_results_file():
    assert docs.claim_failures(ROOT) == []


def test_the_readme_table_gives_the_reports_train_times():
    """The decision card in reports/comparison.md rounds each train time to whole seconds."""
    card = (ROOT / "reports/comparison.md").read_text().split("\n## ")[0]
    report = {}
    # times: one pass (¹), or mean ± sd over seeds
    row_re = r"^\| (\w+) \| \d+ \| (\w+) \|.*\| (\d+)(?: ¹| ± \d+) \| [\d,]+(?: ¹| ± [\d,]+) \|$"
    for row in re.findall(row_re, card, re.M):
        report.setdefault(row[0], {})[row[1].lower()] = row[2]
    assert set(report) == {"sentiment", "pos", "ner", "lm"}
    readme = (ROOT / "README.md").read_text()
    for task, times in report.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| {task}: "))
        assert row.endswith(f"| {' / '.join(times[c] for c in ('rnn', 'lstm', 'gru'))} |"), row


def test_a_changed_result_makes_its_block_stale(tmp_path):
    for rel in ("README.md", "reports/comparison.md", "reports/summary.json",
                "benchmarks/results/make_run_history_x86_64.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
    (tmp_path / "docs").mkdir()
    summary = tmp_path / "reports/summary.json"
    data = json.loads(summary.read_text())
    data["tasks"]["sentiment"]["cells"]["rnn"]["train_seconds"] += 12  # the README's table
    summary.write_text(json.dumps(data))
    assert docs.stale(tmp_path) == [tmp_path / "README.md"]
    (tmp_path / "README.md").write_text(docs.render((tmp_path / "README.md").read_text(), tmp_path))
    assert docs.stale(tmp_path) == []


@pytest.mark.parametrize("page", docs.doc_files(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    missing = [target for target in LINK.findall(text)
               if not re.match(r"[a-z]+:", target) and not target.startswith("#")
               and not (page.parent / target.split("#")[0]).exists()]
    assert missing == []


def test_the_readme_stays_short_and_indexes_every_page():
    assert len((ROOT / "README.md").read_text().splitlines()) < 300
    index = (ROOT / "docs/README.md").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"README.md"}
    assert {p for p in pages if f"]({p})" not in index} == set()


def test_the_generator_imports_no_heavy_module():
    import subprocess
    import sys
    code = ("import sys, pipeline.docs; "
            "print(sorted(m for m in ('torch', 'lightning', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
