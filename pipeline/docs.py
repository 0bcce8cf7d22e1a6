"""The measured figures in README.md and docs/, from the committed results files.

Figures live in marked blocks, `<!-- generated: NAME -->...<!-- /generated -->`, which
`python -m pipeline.docs` rewrites from `reports/`, `metrics/` and `benchmarks/results/`; figures
quoted in prose are `CLAIMS`, each checked against its file by `tests/test_docs.py`. Standard
library only: it runs in a second, without PyTorch.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python -m pipeline.docs"
BLOCK = re.compile(r"(<!-- generated: ([a-z0-9-]+) -->)(.*?)(<!-- /generated -->)", re.S)
SUMMARY = "reports/summary.json"
MAKE_RUNS = "benchmarks/results/make_run_history_x86_64.json"
LONG_TEXT = "benchmarks/results/long_text_x86_64.json"
KERAS = "benchmarks/results/long_text_lstm_keras_x86_64.json"
SUITES = "benchmarks/results/suite_history_x86_64.json"
DEFAULTS = "benchmarks/results/defaults_x86_64.json"

# How the results table names each default dataset's test split (and the sample params.yaml
# takes of it, if any: `sample_label`).
DATASETS = {"rotten_tomatoes": ("Rotten Tomatoes", "snippets"),
            "brown_pos": ("Brown", "sentences"),
            "wnut16": ("WNUT-16 train split re-split by tweet", "tweets"),
            "brown_lm": ("Brown running text", "sentences")}


def sample_label(task: dict[str, Any], unit: str) -> str:
    """`, 5k-sentence sample` or `, ~100k-word sample` where the task's data is a sample
    (summary.json's `sample`, as params.yaml took it)."""
    sample = task.get("sample") or {}
    if "max_words" in sample:
        return f", ~{sample['max_words'] / 1000:.0f}k-word sample"
    if "max_examples" in sample:
        return f", {sample['max_examples'] / 1000:.0f}k-{unit.removesuffix('s')} sample"
    return ""


def load(root: Path, rel: str) -> Any:
    return json.loads((root / rel).read_text())


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def seconds(values: list[float]) -> str:
    """`400-493 s`, or `641 s` for one value."""
    lo, hi = round(min(values)), round(max(values))
    return f"{lo} s" if lo == hi else f"{lo}-{hi} s"


def metric_name(task: dict[str, Any]) -> str:
    if task["ranked_by"] == "perplexity":
        return "perplexity (lower is better)"
    if task["ranked_by"] == "entity_f1":
        return "entity F1"
    return "token accuracy" if task["family"] == "tagging" else task["ranked_by"]


def verdicts(root: Path) -> str:
    """The report's opening verdicts, each up to its test's name, quoted."""
    text = (root / "reports/comparison.md").read_text().split("**Decision card.**")[0]
    bullets = [line for line in text.splitlines() if line.startswith("- **")]
    quoted = []
    for bullet in bullets:  # up to the end of its test's name: `... draws), Holm-adjusted ...`
        end = re.search(r"(draws\)|pairs|tests)\.", bullet)
        head, rest = (bullet[:end.end()], bullet[end.end():]) if end else (bullet, "")
        text = head + (" (...)" if rest.strip() else "")
        quoted += textwrap.wrap(text, 96, initial_indent="> ", subsequent_indent=">   ")
    return "\n".join(quoted)


def results_table(root: Path) -> str:
    """Each task's test score with its interval and each cell's train time, as the report."""
    tasks = load(root, SUMMARY)["tasks"]
    first = next(iter(tasks.values()))
    cells = list(first["cells"])
    names = [c.upper() for c in cells]
    rows = [f"| task (test split) | metric [95% interval over the test sample] | "
            f"{' | '.join(names)} | train time {' / '.join(names)} (s) |",
            "|---|---|" + "---:|" * (len(cells) + 1)]
    for name, task in tasks.items():
        runs = [task["cells"][c] for c in cells]
        label, unit = DATASETS.get(task["dataset"], (task["dataset"], "examples"))
        label += sample_label(task, unit)
        key = task["ranked_by"]
        over = runs[0][f"{key}_ci95_over"].removeprefix("test ")
        scores = ([f"{r[key]:.1f} [{r[key + '_ci95'][0]:.1f}, {r[key + '_ci95'][1]:.1f}]"
                   for r in runs] if key == "perplexity" else
                  [f"{r[key] * 100:.2f}% [{r[key + '_ci95'][0] * 100:.1f}, "
                   f"{r[key + '_ci95'][1] * 100:.1f}]" for r in runs])
        times = " / ".join(f"{r['train_seconds']:.0f}" for r in runs)
        rows.append(f"| {name}: {label}, {runs[0]['test_examples']:,.0f} test {unit} "
                    f"(resampled as {over}) | {metric_name(task)} | {' | '.join(scores)} | "
                    f"{times} |")
    return "\n".join(rows)


def longrange_default(root: Path) -> str:
    """The synthetic sweep's test accuracy and epochs per cell, in the default run."""
    results = load(root, SUMMARY)["longrange"]["results"]
    parts, seeds = [], set()
    for problem, lengths in results.items():
        for length, result in lengths.items():
            cells = result["accuracy"]
            epochs = []
            folder = root / f"metrics/{problem}_{length}/test"
            for cell in cells:
                files = sorted(folder.glob(f"{cell}-seed*.json"))
                seeds.update(f.stem.split("-seed")[1] for f in files)
                epochs.append("/".join(str(json.loads(f.read_text())["epochs"]) for f in files))
            scores = " / ".join(f"{c.upper()} {sum(a) / len(a) * 100:.2f}"
                                for c, a in cells.items())
            parts.append(f"{problem} at {length} steps {scores} ({' / '.join(epochs)} epochs; "
                         f"chance {result['chance'] * 100:.1f})")
    return (f"Measured in the default run (seed {', '.join(sorted(seeds))}, test accuracy, %): "
            + "; ".join(parts) + ".")


def gradient_30(root: Path) -> str:
    """How much of the last state's gradient each cell keeps 30 tokens back, per real task."""
    parts = []
    for name, task in load(root, SUMMARY)["tasks"].items():
        kept = {}
        for cell, flow in task.get("gradient_flow", {}).items():  # none for language models
            if 30 in flow["distance"]:
                kept[cell] = f"{flow['ratio'][flow['distance'].index(30)]:.0e}".replace("e-0", "e-")
        if kept and "rnn" in kept:
            others = ", ".join(f"{c.upper()} {v}" for c, v in kept.items() if c != "rnn")
            parts.append(f"{kept['rnn']} on {name} ({others})")
    return ("On the real tasks, 30 tokens back, the plain RNN keeps this share of its last "
            "state's gradient: " + "; ".join(parts)
            + " (tasks whose curves stop earlier are left out).")


def runs_by_kind(root: Path) -> tuple[dict[str, list[float]], list[float]]:
    """Fresh-clone `make run` seconds: side by side per CPU, and one stage at a time."""
    side: dict[str, list[float]] = {}
    single = []
    for run in load(root, MAKE_RUNS)["runs"]:
        if run["stages_at_once"] > 1:
            side.setdefault(run["cpu"], []).append(run["make_run_seconds"])
        else:
            single.append(run["make_run_seconds"])
    return side, single


def make_run_times(root: Path) -> str:
    """The README's time for `make run`, over every timed fresh clone."""
    side, single = runs_by_kind(root)
    every = [s for values in side.values() for s in values]
    lo, hi = math.floor(min(every) / 60), math.ceil(max(every) / 60)
    per_cpu = ", ".join(f"{seconds(v)} in {len(v)} fresh clone{'s' * (len(v) > 1)} on a {cpu}"
                        for cpu, v in side.items())
    return (f"{lo}-{hi} minutes on a 2-core CPU, environment included: {per_cpu}, against "
            f"{seconds(single)} one stage at a time before")


def make_run_history(root: Path) -> str:
    """Every timed fresh clone, latest first."""
    rows = ["| date | commit | CPU | stages at once | make run | environment | train | "
            "synthetic sweep |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for run in reversed(load(root, MAKE_RUNS)["runs"]):
        g = run["groups"] or {}
        sweep = g.get("generate", 0) + g.get("longrange", 0)
        cols = [f"{g[k]:.0f} s" if k in g else "-" for k in ("environment", "train")]
        rows.append(f"| {run['date']} | {run['commit']} | {run['cpu']} | {run['stages_at_once']} | "
                    f"**{run['make_run_seconds']:.0f} s** | {' | '.join(cols)} | "
                    f"{f'{sweep:.0f} s' if g else '-'} |")
    return "\n".join(rows)


def sweep_time(root: Path) -> str:
    """What the synthetic sweep's stages took in the latest timed fresh clone."""
    run = [run for run in load(root, MAKE_RUNS)["runs"] if run["groups"]][-1]
    g = run["groups"]
    seconds = g["generate"] + g["longrange"]
    return f"{seconds:.0f} s of stage time in the fresh clone of {run['date']}"


def step(value: float) -> str:
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


def long_text(root: Path) -> str:
    """One training step per path, per cell and length (best of the timed rounds)."""
    rows = ["| cell, length | rnnbench (exact) | PyTorch padded (inexact) | "
            "PyTorch packed (exact) |", "|---|---:|---:|---:|"]
    for cell, lengths in load(root, LONG_TEXT)["cells"].items():
        for length, r in lengths.items():
            exact = r["exact"]["default"]["s_per_step_best"]
            padded = r["padded"]["default"]["s_per_step_best"]
            shown = f"**{step(exact)}**" if exact < 0.99 * padded else step(exact)
            packed = "-"
            if "packed" in r:
                p = r["packed"]
                packed = (f"{step(p['default']['s_per_step_best'])} "
                          f"({step(p['deterministic']['s_per_step_best'])} deterministic)")
            rows.append(f"| {cell.upper()}, {length} tokens | {shown} "
                        f"({step(r['exact']['deterministic']['s_per_step_best'])} deterministic) | "
                        f"{step(padded)} | {packed} |")
    return "\n".join(rows)


def long_text_keras(root: Path) -> str:
    """The LSTM step against the masked Keras LSTM on the same rows."""
    data = load(root, KERAS)
    rounds = next(iter(data["cells"]["lstm"].values()))["keras"]["rounds"]
    rows = [f"| LSTM, best of {rounds} | rnnbench (exact) | Keras (masked, exact) | "
            "PyTorch padded (inexact) | PyTorch packed (exact) |", "|---|---:|---:|---:|---:|"]
    for length, r in data["cells"]["lstm"].items():
        packed = r["packed"]["default"]["s_per_step_best"]
        rows.append(f"| {length} tokens | **{r['exact']['default']['s_per_step_best']:.3f} s** "
                    f"({r['exact_over_keras']:.2f}x Keras) | "
                    f"{r['keras']['s_per_step_best']:.3f} s | "
                    f"{r['padded']['default']['s_per_step_best']:.3f} s | "
                    f"{f'{packed:.1f}' if packed >= 10 else f'{packed:.2f}'} s |")
    return "\n".join(rows)


def suite_times(root: Path) -> str:
    """Every timed fresh-clone suite, latest first."""
    rows = ["| date | commit | CPU | workers | tests: passed (skipped, failed) | pytest | "
            "`CI=true bash .ci/run` |", "|---|---|---|---:|---|---:|---:|"]
    for run in reversed(load(root, SUITES)["runs"]):
        others = ", ".join(f"{run[k]} {k}" for k in ("skipped", "failed") if run.get(k))
        rows.append(f"| {run['date']} | {run['commit']} | {run['cpu']} | {run['workers']} | "
                    f"{run['passed']}{f' ({others})' if others else ''} | "
                    f"{run['pytest_seconds']:,.0f} s | **{run['seconds']:,.0f} s** |")
    return "\n".join(rows)


def defaults_table(root: Path) -> str:
    """Each compared setting's candidates scored on validation, and the value chosen."""
    data = load(root, DEFAULTS)
    rows = ["| task | setting | mean validation score over the cells, per value (RNN / LSTM / "
            "GRU) | standard error | chosen |", "|---|---|---|---:|---|"]
    for c in data["choices"]:
        values = "; ".join(
            f"{v}: **{100 * c['mean'][v]:.2f}**" if str(c["chosen"]) == v else
            f"{v}: {100 * c['mean'][v]:.2f}" for v in c["validation"])
        per_cell = "; ".join(f"{v}: " + " / ".join(f"{100 * x:.1f}" for x in cells.values())
                             for v, cells in c["validation"].items())
        kept = ("kept" if str(c["chosen"]) == str(c["current"]) else
                f"changed from {c['current']}")
        rows.append(f"| {c['task']} | `{c['section']}.{c['key']}` | {values} ({per_cell}) | "
                    f"{100 * c['standard_error']:.2f} | {c['chosen']} ({kept}) |")
    return "\n".join(rows)


BLOCKS: dict[str, Callable[[Path], str]] = {
    "verdicts": verdicts, "results-table": results_table, "longrange-default": longrange_default,
    "gradient-30": gradient_30, "make-run-times": make_run_times,
    "make-run-history": make_run_history, "sweep-time": sweep_time, "long-text": long_text,
    "long-text-keras": long_text_keras, "suite-times": suite_times,
    "defaults": defaults_table,
}


def render(text: str, root: Path = ROOT) -> str:
    """`text` with every generated block rewritten; a block that starts on its own line stays so."""
    def block(m: re.Match[str]) -> str:
        body = BLOCKS[m.group(2)](root)
        if m.group(3).startswith("\n"):
            body = f"\n{body}\n"
        return m.group(1) + body + m.group(4)
    return BLOCK.sub(block, text)


@dataclass(frozen=True)
class Claim:
    """A figure quoted in prose: `text(results)` must appear in `doc`."""
    doc: str
    source: str
    text: Callable[[Any], str]


def pct(value: float, digits: int = 0) -> str:
    return f"{value * 100:.{digits}f}%"


def rounds(d: dict[str, Any], n: int) -> dict[str, Any]:
    return d[f"round_{n}"]


def decision(d: dict[str, Any], n: int) -> str:
    return rounds(d, n)["decisions"][0]


def _pct_in(text: str, which: int) -> str:
    """The `which`-th percentage in a recorded decision, as written there."""
    return re.findall(r"[0-9.]+%", text)[which]


def _judged(text: str) -> str:
    """How many test examples a recorded decision was judged on."""
    return re.findall(r"on ([\d,]+) test examples", text)[0]


RETRAIN = "benchmarks/results/retrain_rounds_x86_64.json"
TOKENIZE = "benchmarks/results/tokenize_x86_64.json"
THROUGHPUT = "benchmarks/results/train_throughput_x86_64.json"


def lstm(d: dict[str, Any], length: str) -> dict[str, Any]:
    return d["cells"]["lstm"][length]


def rate(d: dict[str, Any], cell: str, length: str = "700") -> str:
    return pct(d["cells"][cell][length]["exact"]["of_matmul_rate"])


def exp(value: float, digits: int) -> str:
    """`1.5e-8` rather than Python's `1.5e-08`."""
    return f"{value:.{digits}e}".replace("e-0", "e-")


def largest_padded_diff(d: dict[str, Any]) -> float:
    return max(r["padded"]["max_abs_diff_vs_exact"]
               for cell in d["cells"].values() for r in cell.values())


def workers(d: dict[str, Any]) -> str:
    one, two = (run["wall_seconds"] for run in d["runs"])
    return f"**1 worker {one:.0f} s, 2 workers {two:.0f} s ({one / two:.2f}x)**"


CLAIMS = [
    Claim("docs/design.md", TOKENIZE, lambda d: f"**{d['regex_mb_per_s']:.1f} MB/s**"),
    Claim("docs/design.md", TOKENIZE,
          lambda d: f"**{d['hf_wordlevel_mb_per_s']:.1f} MB/s** for Hugging Face `tokenizers` "
                    f"{d['hf_tokenizers_version']}"),
    Claim("docs/design.md", THROUGHPUT,
          lambda d: f"**{pct(d['padding_fraction']['random_batches'], 1)}** of the batch tensor"),
    Claim("docs/design.md", THROUGHPUT,
          lambda d: f"**{pct(d['padding_fraction']['bucketed'], 1)}**"),
    Claim("docs/speed.md", LONG_TEXT,
          lambda d: "equal packing's to "
                    f"{exp(lstm(d, '700')['packed']['max_abs_diff_vs_exact'], 1)}"),
    Claim("docs/speed.md", LONG_TEXT,
          lambda d: f"differ by up to {exp(largest_padded_diff(d), 0)}"),
    Claim("docs/speed.md", LONG_TEXT,
          lambda d: "It computes "
                    f"{pct(lstm(d, '700')['computed_tokens'] / lstm(d, '700')['padded_tokens'])}"
                    " of the padded tensor"),
    Claim("docs/speed.md", LONG_TEXT,
          lambda d: "the real tokens are "
                    f"{pct(lstm(d, '700')['real_tokens'] / lstm(d, '700')['padded_tokens'])}"),
    Claim("docs/speed.md", LONG_TEXT,
          lambda d: f"at {d['matmul_gflop_per_s']['recurrent_step_64x128x512']:.0f} GFLOP/s"),
    Claim("docs/speed.md", LONG_TEXT,
          lambda d: "the exact LSTM trains at "
                    f"{lstm(d, '700')['exact']['gflop_per_s']:.0f} GFLOP/s "
                    f"of useful work ({rate(d, 'lstm')}; {rate(d, 'lstm', '200')} at 200 tokens), "
                    f"the GRU at {rate(d, 'gru')} and the RNN at {rate(d, 'rnn')}"),
    Claim("docs/speed.md", KERAS,
          lambda d: f"and {pct(1 - lstm(d, '200')['exact_over_keras'])} faster at 200"),
    Claim("docs/team.md", "benchmarks/results/parallel_workers_x86_64.json", workers),
    Claim("docs/retraining.md", RETRAIN,
          lambda d: f"round 1 took {rounds(d, 1)['seconds']:.0f} s "
                    f"({len(rounds(d, 1)['stages_ran'])} stages"),
    Claim("docs/retraining.md", RETRAIN,
          lambda d: f"first champion at {_pct_in(decision(d, 1), 0)}"),
    Claim("docs/retraining.md", RETRAIN,
          lambda d: f"round 2 took {rounds(d, 2)['seconds']:.0f} s"),
    Claim("docs/retraining.md", RETRAIN, lambda d: f"round 3 took {rounds(d, 3)['seconds']:.0f} s"),
    Claim("docs/retraining.md", RETRAIN,
          lambda d: f"scored {_pct_in(decision(d, 3), 0)} against the champion's "
                    f"{_pct_in(decision(d, 3), 1)} on the\nsame {_judged(decision(d, 3))} "
                    "test reviews"),
    Claim("docs/retraining.md", RETRAIN,
          lambda d: "was **promoted**" if ": promoted:" in decision(d, 3)
          else "was kept"),
    Claim("docs/seeds.md", SUMMARY,
          lambda d: "the sentiment LSTM's "
                    f"{pct(d['tasks']['sentiment']['cells']['lstm']['accuracy'], 2)}"),
]


def claim_failures(root: Path = ROOT) -> list[str]:
    """Each claim whose figure, rendered from its results file now, is missing from its page."""
    failures = []
    for claim in CLAIMS:
        expected = claim.text(load(root, claim.source))
        text = " ".join((root / claim.doc).read_text().split())
        if " ".join(expected.split()) not in text:
            failures.append(f"{claim.doc}: expected {expected!r} (from {claim.source})")
    return failures


def stale(root: Path = ROOT) -> list[Path]:
    """The pages whose generated blocks differ from what `render` writes now."""
    return [path for path in doc_files(root) if render(path.read_text(), root) != path.read_text()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a page is stale; write nothing")
    args = ap.parse_args(argv)
    paths = stale()
    if args.check:
        for path in paths:
            print(f"{path.relative_to(ROOT)}: stale, run `{COMMAND}`")
        for line in claim_failures():
            print(line)
        sys.exit(1 if paths or claim_failures() else 0)
    for path in paths:
        path.write_text(render(path.read_text()))
        print(f"wrote {path.relative_to(ROOT)}")
    for line in claim_failures():
        print(f"by hand: {line}")


if __name__ == "__main__":
    main()
