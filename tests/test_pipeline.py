"""The real DVC pipeline, end to end, in a fresh git + DVC repo on the real data sample."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, SEED, TASK, tiny_params, write_params
from tests.servers import free_port, serving
from tests.test_serving import invoke

pytestmark = pytest.mark.slow


def sh(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


CONLLU = ROOT / "tests" / "data" / "brown_sample.conllu"
TEXT = ROOT / "tests" / "data" / "brown_text_sample.txt"
CELLS = ("rnn", "gru")  # two cells keep the matrix real and the suite short


def cell_runs(repo: Path, task: str = TASK) -> list:
    client = MlflowClient(f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(task)  # one experiment per task
    return client.search_runs([exp.experiment_id], "tags.`rnnbench.kind` = 'cell'")


def by_sentence(conllu: Path, dest: Path) -> Path:
    """The CoNLL-U sample without its `# newdoc` lines: each sentence a split group of its
    own, so that the test split holds ~45 groups to resample (its 5 documents would leave
    one or two, too few for any test)."""
    dest.write_text(conllu.read_text(encoding="utf-8").replace("# newdoc", "# doc"),
                    encoding="utf-8")
    return dest


def two_tasks(wheel: Path, conllu: Path) -> dict:
    """tiny_params with a second task, POS tagging on a CoNLL-U sample with char features
    (trained long enough to beat the majority tag), and a third, language modelling on a
    plain-text sample of Brown."""
    raw = tiny_params(wheel)
    raw["tasks"], raw["cells"] = [TASK, "pos", "lm"], list(CELLS)
    raw["task"]["pos"] = {"data": {"dataset": "conllu",
                                   "source": {"kind": "local", "path": str(conllu)}},
                          "prepare": {}, "model": {"char_filters": 8},
                          "train": {"max_epochs": 4, "limit_train_batches": None}}
    raw["task"]["lm"] = {"data": {"dataset": "text",
                                  "source": {"kind": "local", "path": str(TEXT)}},
                         "prepare": {}, "model": {"bidirectional": False},
                         "train": {"batch_size": 8, "bptt": 12}}
    raw["longrange"].update(problems=["recall"], lengths=[6])  # the sweep's stages, once
    return raw


@pytest.fixture(scope="module")
def repo(tmp_path_factory, sample_wheel) -> Path:
    """A copy of the project (code, dvc.yaml, tiny params) that has run `make run`'s
    `rnnbench repro` once, two stages at a time."""
    repo = tmp_path_factory.mktemp("repo")
    for folder in ("pipeline", "stages"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    shutil.copy(ROOT / ".dvc" / ".gitignore", repo / ".dvc" / ".gitignore")
    write_params(repo, two_tasks(sample_wheel, by_sentence(
        CONLLU, tmp_path_factory.mktemp("conllu") / "brown_by_sentence.conllu")))
    sh(repo, "git", "init", "-q")
    # A local identity: CI machines may have none, and `dvc exp run` commits.
    sh(repo, "git", "config", "user.name", "rnnbench tests")
    sh(repo, "git", "config", "user.email", "tests@rnnbench.invalid")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "project")
    log = sh(repo, sys.executable, "-m", "pipeline.cli", "repro", "--jobs", "2")  # make run
    # Commit the results as a user would: metrics and reports are git-tracked (cache: false),
    # so an experiment's temp copy starts from them and reruns only the stages it changes.
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "first comparison")
    repo.joinpath("first.log").write_text(log)
    return repo


def test_repro_trains_every_cell_on_every_task_and_reports(repo):
    log = (repo / "first.log").read_text()
    for task in (TASK, "pos", "lm"):
        stages = [f"download@{task}", f"prepare@{task}", f"evaluate@{task}"] + [
            f"train@{task}-{cell}-{SEED}" for cell in CELLS]
        for stage in stages:
            assert f"Running stage '{stage}'" in log
    for length in (6,):  # the synthetic sweep: generated data, then a run per cell
        assert f"Running stage 'generate@recall-{length}'" in log
        for cell in CELLS:
            assert f"Running stage 'longrange@recall-{length}-{cell}-{SEED}'" in log
            diag = json.loads((repo / "metrics" / f"recall_{length}" / "diagnostics"
                               / f"{cell}-seed{SEED}.json").read_text())
            assert diag["reference_max_abs_diff"] <= 1e-5 and diag["directions"] == 1
    assert "Running stage 'report'" in log
    report = (repo / "reports" / "comparison.md").read_text()
    assert "## Long-range memory: synthetic tasks" in report and "| recall | 6 |" in report
    assert report.count("### Gradient flow through time") == 2  # one per task
    assert f"## {TASK}: `rotten_tomatoes` (classification)" in report
    assert "## pos: `conllu` (sequence labelling)" in report
    assert report.count("### Significance") == 3 and "| GRU |" in report
    metrics = sh(repo, "dvc", "metrics", "show", "--json")
    assert all(f"metrics/{task}/test/{cell}-seed{SEED}.json" in metrics
               for task in (TASK, "pos") for cell in CELLS)
    summary = json.loads((repo / "reports" / "summary.json").read_text())["tasks"]
    assert summary["pos"]["family"] == "tagging" and set(summary["pos"]["cells"]) == set(CELLS)


def test_a_language_model_task_stands_next_to_its_ngram_baselines(repo):
    """The language-modelling task: every cell's test perplexity, the unigram's and the
    Kneser-Ney n-gram's on the same test tokens, each cell tested against the n-gram."""
    report = (repo / "reports" / "comparison.md").read_text()
    assert "## lm: `text` (language modelling)" in report
    assert "Perplexity, lower is better:" in report and "| unigram (add-one) |" in report
    assert re.search(r"\| Kneser-Ney [345]-gram \| [\d.]+ \| \[", report)
    assert "### How far back each cell reads" in report and "| k = 1 |" in report
    assert "### Samples" in report and "- GRU: *" in report
    assert (repo / "reports" / "figures" / "lm_context.png").is_file()
    metrics = json.loads(sh(repo, "dvc", "metrics", "show", "--json"))
    shown = json.dumps(metrics)
    assert "metrics/lm/test/kneser_ney.json" in shown and "metrics/lm/test/gru-seed" in shown
    summary = json.loads((repo / "reports" / "summary.json").read_text())["tasks"]["lm"]
    assert summary["family"] == "language_model" and summary["ranked_by"] == "perplexity"
    kn = summary["baselines"]["kneser_ney"]
    assert kn["order"] in (3, 4, 5) and set(kn["val_perplexity_by_order"]) == {"3", "4", "5"}
    for cell in CELLS:
        test = json.loads((repo / "metrics" / "lm" / "test" / f"{cell}-seed{SEED}.json")
                          .read_text())
        # perplexity and bits per token are one number in two units
        assert test["bits_per_token"] == pytest.approx(math.log2(test["perplexity"]), rel=1e-4)
        assert summary["cells"][cell]["perplexity"] == pytest.approx(test["perplexity"],
                                                                     rel=1e-4)
        assert summary["against_ngram"][cell]["p"] <= 1
        cut = json.loads((repo / "metrics" / "lm" / "diagnostics" / f"{cell}-seed{SEED}.json")
                         .read_text())
        assert list(cut["context_perplexity"]) == ["1", "2", "5", "10", "20", "50", "100",
                                                   "all"]
        assert len(cut["samples"]) == 2 and all(s["text"] for s in cut["samples"])
        rows = list(csv.DictReader((repo / "metrics" / "lm" / "predictions"
                                    / f"{cell}-seed{SEED}.csv").open()))
        assert sum(int(r["tokens"]) for r in rows) == sum(
            int(r["tokens"]) for r in csv.DictReader(
                (repo / "metrics" / "lm" / "predictions" / "kneser_ney.csv").open()))


def test_make_run_leaves_a_champion_to_predict_and_serve_with(repo, tmp_path):
    """make run's last steps: `rnnbench promote` registers each task's winner if it learned
    (the tagger; not the sentiment model, which on a few hundred reviews says "fresh" to all),
    a second promote adds nothing, and `predict` and `serve` then find the champion in the
    project's store, with no MLFLOW_TRACKING_URI set."""
    run_target = (ROOT / "Makefile").read_text().split("\nrun:")[1].split("\n\n")[0]
    assert [ln.strip() for ln in run_target.splitlines()[1:]] == [
        "rnnbench repro", "rnnbench promote", "python -m pipeline.docs"]
    cli = (sys.executable, "-m", "pipeline.cli")
    lines = sh(repo, *cli, "promote").splitlines()
    assert any(ln.startswith("pos: first champion: ") for ln in lines), lines
    assert any(ln.startswith(f"{TASK}: nothing registered: ") and "did not learn" in ln
               for ln in lines), lines
    again = sh(repo, *cli, "promote")
    assert re.search(rf"^pos: (rnn|gru) seed {SEED} is already version 1$", again, re.M), again
    text = "The jury praised the city ."
    predicted = [json.loads(ln)["tags"] for ln in sh(repo, *cli, "predict", "--task", "pos",
                                                     text).splitlines() if ln.startswith("{")]
    port = free_port()
    with serving([*cli, "serve", "--task", "pos", "--port", str(port)],
                 f"http://127.0.0.1:{port}/ping", cwd=repo,
                 env={"MLFLOW_TRACKING_URI": ""}):
        served = invoke(port, [{"tokens": text.split()}])
    assert [row["tags"] for row in served] == predicted
    refused = subprocess.run([*cli, "serve", "--task", TASK], cwd=repo, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0 and refused.stderr.strip().splitlines()[-1].startswith(
        f"error: --model champion: rnnbench-{TASK} has no champion")


def test_mlflow_holds_one_grouped_run_per_cell_and_task(repo):
    for task in (TASK, "pos"):
        runs = cell_runs(repo, task)
        assert sorted(r.data.tags["rnnbench.cell"] for r in runs) == sorted(CELLS)
        assert {r.data.tags["rnnbench.task"] for r in runs} == {task}
        assert len({r.data.tags["mlflow.parentRunId"] for r in runs}) == 1
        assert all("test_accuracy" in r.data.metrics for r in runs)
    pos = cell_runs(repo, "pos")
    assert all(r.data.params["model.char_filters"] == "8" for r in pos)
    assert all("test_oov_accuracy" in r.data.metrics for r in pos)


def test_second_repro_runs_nothing(repo):
    log = sh(repo, "dvc", "repro")
    assert "Running stage" not in log
    assert "up to date" in log
    assert len(cell_runs(repo)) == len(CELLS)  # skipped stages create no runs


def test_a_task_change_and_a_cell_override_retrain_only_what_they_touch(repo):
    """One temporary experiment changes sentiment's learning rate for every cell and the RNN's
    on every task: DVC reruns sentiment's cells and every task's RNN (the synthetic sweep's
    too), nothing else, and the runs land in the project's store, not the temporary copy's."""
    log = sh(repo, "dvc", "exp", "run", "--temp", "-n", "lr4",
             "-S", f"+task.{TASK}.train.lr=0.004", "-S", "+overrides.rnn.lr=0.001")
    ran = set(re.findall(r"Running stage '([^']+)'", log))
    assert {s for s in ran if s.startswith(("download@", "prepare@", "generate@"))} == set()
    assert {s for s in ran if s.startswith("train@")} == {
        f"train@{TASK}-rnn-{SEED}", f"train@{TASK}-gru-{SEED}", f"train@pos-rnn-{SEED}",
        f"train@lm-rnn-{SEED}"}
    assert {s for s in ran if s.startswith("longrange@")} == {
        f"longrange@recall-{n}-rnn-{SEED}" for n in (6,)}
    assert "report" in ran
    assert "lr4" in sh(repo, "dvc", "exp", "show", "--csv")
    runs = cell_runs(repo)
    assert len(runs) == 2 * len(CELLS)
    new = [r for r in runs if r.data.tags.get("rnnbench.dvc_exp") == "lr4"]
    # the cell's override wins over the task's change
    assert {r.data.tags["rnnbench.cell"]: r.data.params["train.lr"] for r in new} == {
        "rnn": "0.001", "gru": "0.004"}
    assert len({r.data.tags["mlflow.parentRunId"] for r in new}) == 1  # a new comparison
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))
    assert set(report_cells(repo, "lr4", "pos")["cells"]) == set(CELLS)


def test_bad_params_stop_the_stage_with_one_line(repo):
    params = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(params.replace("hidden_size: 16", "hidden_size: -16"))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                     f"{os.environ['PATH']}"}
        cmd = [sys.executable, "-m", "stages.train", TASK, "gru", str(SEED)]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True,
                              timeout=120)
    finally:
        (repo / "params.yaml").write_text(params)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: params.yaml: model.hidden_size: Input should be "
                                   "greater than 0 (got -16)")


def report_cells(repo: Path, exp: str, task: str = TASK) -> dict:
    """One task's summary from the report that experiment `exp` produced (in a temp copy)."""
    out = sh(repo, "git", "show", f"{exp_ref(repo, exp)}:reports/summary.json")
    return json.loads(out)["tasks"][task]


def exp_ref(repo: Path, name: str) -> str:
    for line in sh(repo, "git", "for-each-ref", "--format=%(refname)", "refs/exps").split():
        if line.endswith("/" + name):
            return line
    raise AssertionError(f"no experiment {name}: {sh(repo, 'dvc', 'exp', 'list')}")


def test_imdb_from_a_local_mirror_and_a_users_conll_file_train_and_report(repo):
    """Both tasks' data replaced in one experiment (each experiment costs its own processes):
    sentiment on IMDB from a URL, POS on the user's CoNLL file of BIO-tagged tweets. One cell:
    the data's path is under test here; every cell on every task, in the first run's."""
    from tests.httpserver import FileServer
    from tests.test_downloads import imdb_archive, md5

    data = imdb_archive()
    tweets = ROOT / "tests" / "data" / "wnut16_sample.txt"  # token<TAB>tag, blank-line separated
    with FileServer() as srv:
        srv.files["/aclImdb_v1.tar.gz"] = data
        url = srv.url + "/aclImdb_v1.tar.gz"
        log = sh(repo, "dvc", "exp", "run", "--temp", "-n", "imdb-conll",
                 "-S", f"+task.{TASK}.data.dataset=imdb",
                 "-S", f"+task.{TASK}.data.source={{kind:url,url:'{url}',md5:{md5(data)}}}",
                 "-S", "task.pos.data.dataset=conll", "-S", f"task.pos.data.source.path={tweets}",
                 "-S", "cells=[gru]")
    for task in (TASK, "pos"):
        assert f"Running stage 'download@{task}'" in log and f"'train@{task}-gru-{SEED}'" in log
    assert "Running stage 'longrange@" not in log  # the synthetic sweep does not read tasks
    summary = report_cells(repo, "imdb-conll")
    assert summary["dataset"] == "imdb" and set(summary["cells"]) == {"gru"}
    tagged = report_cells(repo, "imdb-conll", "pos")
    assert tagged["family"] == "tagging" and set(tagged["cells"]) == {"gru"}
    assert tagged["ranked_by"] == "entity_f1"  # BIO tags: scored as entities
    assert all(0 < c["accuracy"] <= 1 for c in tagged["cells"].values())


def test_a_users_csv_without_the_sweep_trains_and_reports(repo, tmp_path):
    """The sentiment task on the user's CSV, in an experiment without the synthetic sweep:
    no generate or longrange stage runs, and the report leaves the sweep out (two cells)."""
    from tests.conftest import SAMPLE_CSV

    rows = list(csv.DictReader(SAMPLE_CSV.open()))
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "sentiment", "film"])
        writer.writerows((r["text"], r["category"], r["movie_name"]) for r in rows
                         if r["category"] != "plot")
    log = sh(repo, "dvc", "exp", "run", "-n", "own-csv",  # in the workspace, not --temp
             "-S", f"+task.{TASK}.data.dataset=csv",
             "-S", f"+task.{TASK}.data.source={{kind:local,path:'{path}'}}",
             "-S", f"+task.{TASK}.data.reader="
                   "{text_column:review,label_column:sentiment,group_column:film}",
             "-S", "longrange.problems=[]", "-S", "cells=[rnn,gru]")
    assert "Running stage 'download@pos'" not in log and "Running stage 'report'" in log
    assert "Running stage 'generate" not in log and "Running stage 'longrange" not in log
    summary = json.loads(sh(repo, "git", "show",
                            f"{exp_ref(repo, 'own-csv')}:reports/summary.json"))
    assert summary["longrange"] is None
    assert summary["tasks"][TASK]["dataset"] == "csv"
    assert set(summary["tasks"][TASK]["cells"]) == {"rnn", "gru"}
