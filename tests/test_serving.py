"""The winner in use: `rnnbench predict` and the served MLflow Model give, on every test
example, the predictions the evaluate stage scored (a language model: the same perplexity of
each text, and the same continuation of a prompt as `rnnbench generate`); a model folder loads
anywhere rnnbench is installed; the promotion rule moves the champion only for a
significantly better model."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipeline import tracking
from pipeline.cli import app
from pipeline.config import load_params
from pipeline.data.corpus import EOS
from pipeline.data.prepare import download, prepare, read_test_examples
from pipeline.data.seen import read_seen
from pipeline.data.text import UNK_ID, Vocab
from pipeline.evaluation.evaluate import evaluate_cell
from pipeline.model.inference import WEIGHTS_FILE
from pipeline.model.predictor import Predictor
from pipeline.model.record import read_record
from pipeline.paths import TEST_EXAMPLES, VOCAB_FILE, Layout
from pipeline.retrain.promote import judge, lm_scores, unigram_of
from pipeline.serving.files import read_inputs
from pipeline.tuning import fits
from tests.conftest import ROOT, SEED, one_task, tiny_params, write_params
from tests.servers import free_port, serving
from tests.test_tagging import conllu_params, prepared_conllu

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def evaluated(layout: Layout, cell: str) -> list[str]:
    """The evaluate stage's predicted label of every test example (tagging: of every token)."""
    with open(layout.predictions(cell, SEED), encoding="utf-8") as fh:
        return [row["predicted"] for row in csv.DictReader(fh)]


def predicted(rows: list[dict]) -> list[str]:
    """The same, from predict's JSON lines or the server's records."""
    return [tag for row in rows for tag in row["tags"]] if rows and "tags" in rows[0] \
        else [row["label"] for row in rows]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> tuple:
    """A POS tagger with character features, trained and evaluated on the CoNLL-U sample."""
    folder = tmp_path_factory.mktemp("tagger")
    write_params(folder, conllu_params())  # predict reads the task's reader settings
    params, layout = prepared_conllu(folder)
    fits.train(params, "gru", layout)
    evaluate_cell(params, "gru", layout)
    return params, layout


def run_predict(project: Path, *args: str, monkeypatch) -> str:
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("family", ["classification", "tagging"])
def test_predict_agrees_with_the_evaluate_stage_on_every_test_example(
        family, trained, tagger, tmp_path, monkeypatch):
    params, layout = (trained[0], trained[1]) if family == "classification" else tagger
    cell = "lstm" if family == "classification" else "gru"
    out = tmp_path / "predictions.jsonl"
    run_predict(layout.root, "--task", params.name, "--model",
                str(layout.model_dir(cell, SEED)), "--input",
                str(layout.prepared / TEST_EXAMPLES), "--output", str(out),
                monkeypatch=monkeypatch)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(read_test_examples(layout.prepared))
    assert predicted(rows) == evaluated(layout, cell)
    if family == "classification":
        assert all(sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4) for r in rows)


def test_predict_reads_texts_and_writes_csv_from_a_run_id(trained, tmp_path, monkeypatch):
    params, layout, records, _ = trained
    out = tmp_path / "p.csv"
    run_predict(layout.root, "--task", params.name, "--model", records["gru"].run_id,
                "a gripping, beautifully acted film", "tedious and overlong", "--output",
                str(out), monkeypatch=monkeypatch)
    rows = list(csv.DictReader(out.open()))
    labels = records["gru"].labels
    assert [r["text"] for r in rows] == ["a gripping, beautifully acted film",
                                         "tedious and overlong"]
    assert all(r["label"] in labels and set(r) == {"text", "label", *(f"p_{x}" for x in labels)}
               for r in rows)


@pytest.mark.parametrize("model", ["champion", "0" * 32, "no/such/folder"])
def test_predict_without_that_model_is_one_line(model, trained, monkeypatch):
    params, layout, *_ = trained
    monkeypatch.chdir(layout.root)
    result = CliRunner().invoke(app, ["predict", "--task", params.name, "--model", model, "hi"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_logged_model_loads_in_a_fresh_process(trained):
    _, layout, records, client = trained
    code = ("import sys, mlflow, pandas as pd; mlflow.set_tracking_uri(sys.argv[1]); "
            "m = mlflow.pyfunc.load_model(sys.argv[2]); "
            "print(m.predict(pd.DataFrame({'text': ['a fine film']}))['label'][0]); "
            "print(m.metadata.signature.inputs.input_names())")
    out = subprocess.run([sys.executable, "-c", code, client.tracking_uri,
                          tracking.model_uri(records["rnn"].run_id)], cwd=layout.root,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] in records["rnn"].labels and out[1] == "['text']"


def test_the_served_tagger_answers_invocations_like_the_evaluate_stage(tagger):
    _, layout = tagger
    record = read_record(layout.model_dir("gru", SEED))
    with served(layout, record.run_id) as port:
        rows = invoke(port, read_test_examples(layout.prepared))
    assert predicted(rows) == evaluated(layout, "gru")


@contextlib.contextmanager
def served(layout: Layout, run_id: str) -> Iterator[int]:
    """`mlflow models serve` of the run's model from the project's store; its port."""
    port = free_port()
    uri = f"sqlite:///{layout.root / 'mlruns' / 'mlflow.db'}"
    with serving([str(BIN / "mlflow"), "models", "serve", "-m", tracking.model_uri(run_id),
                  "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                 f"http://127.0.0.1:{port}/ping", cwd=layout.root,
                 env={"MLFLOW_TRACKING_URI": uri}):
        yield port


def invoke(port: int, examples: list[dict], params: dict | None = None) -> list[dict]:
    """POST the examples' inputs (and inference params) to a served model's /invocations."""
    key = "tokens" if "tokens" in examples[0] else "text"
    body = json.dumps({"dataframe_records": [{key: ex[key]} for ex in examples],
                       **({"params": params} if params else {})}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["predictions"]


def collapsed_copy(folder: Path, dest: Path) -> Path:
    """The model in `folder`, made to predict its most frequent training label for everything
    (the head's bias for it far above the rest): what round 3's early-stopped models did."""
    shutil.copytree(folder, dest)
    seen, record = read_seen(dest), read_record(dest)
    weights = torch.load(dest / WEIGHTS_FILE, weights_only=True)
    weights["head.bias"][record.labels.index(seen.majority_label())] = 1e4
    torch.save(weights, dest / WEIGHTS_FILE)
    return dest


def by_sentence(tmp_path: Path) -> dict:
    """conllu_params on the sample with each sentence a split group of its own: its test split
    holds ~45 groups to resample (by document it holds one, too few for any test)."""
    path = tmp_path / "brown_by_sentence.conllu"
    path.write_text((ROOT / "tests" / "data" / "brown_sample.conllu").read_text(
        encoding="utf-8").replace("# newdoc", "# doc"), encoding="utf-8")
    raw = conllu_params()
    raw["data"]["source"] = {"kind": "local", "path": str(path)}
    return raw


def test_only_a_model_that_learned_is_registered_and_only_a_better_one_promoted(tmp_path):
    """On the same POS test split: a model collapsed onto the most frequent tag (not
    registered, no champion made), a briefly trained first champion, a much better challenger
    (promoted), then a copy of it (no better: kept as challenger)."""
    raw = by_sentence(tmp_path)
    raw["train"].update(max_epochs=3, limit_train_batches=None)
    weak_params, layout = one_task(raw, tmp_path)
    download(weak_params.data, layout)
    prepare(weak_params.data, weak_params.prepare, layout)
    raw["train"].update(max_epochs=25, patience=25)  # ~170 steps: far ahead of the first
    strong_params, _ = one_task(raw, tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    name = tracking.registered_name(weak_params.name)
    examples = read_test_examples(layout.prepared)
    fits.train(weak_params, "rnn", layout)
    collapsed = judge(client, collapsed_copy(layout.model_dir("rnn", SEED), tmp_path / "flat"),
                      examples, "abc123")
    assert collapsed.version is None and not collapsed.learned
    assert collapsed.challenger == pytest.approx(collapsed.evidence.baseline)
    assert collapsed.words().startswith("nothing registered: rnn seed 42 did not learn")
    assert not client.search_model_versions(f"name = '{name}'")
    decisions = [judge(client, layout.model_dir("rnn", SEED), examples, "abc123")]
    for _ in range(2):
        fits.train(strong_params, "gru", layout)
        decisions.append(judge(client, layout.model_dir("gru", SEED), examples, "abc123"))
    first, better, same = decisions
    assert first.promoted and first.champion_version is None and first.learned
    assert better.promoted and better.p < 0.05 and better.challenger > better.champion
    assert not same.promoted and same.p >= 0.05 and same.champion_version == better.version
    # one prepared split: nothing any of them saw is in it, and all of it was judged
    assert {(d.evidence.examples, d.evidence.excluded) for d in decisions} == {(len(examples), 0)}
    assert client.get_model_version_by_alias(name, "champion").version == better.version
    assert client.get_model_version_by_alias(name, "challenger").version == same.version
    tags = client.get_model_version(name, same.version).tags
    assert tags["promotion"] == "kept" and float(tags["promotion.p_value"]) >= 0.05
    assert {"cell", "seed", "data_hash", "git_commit", "test_accuracy",
            "promotion.baseline_score", "promotion.excluded_seen"} <= tags.keys()


def test_a_champion_is_never_judged_on_what_it_trained_on(tmp_path):
    """The champion trained on one split of the sentences (seed 2), the challenger on another
    (seed 10), whose test split holds sentences the champion trained on: only those new to
    both are judged, and the rest is counted."""
    raw = by_sentence(tmp_path)
    raw["train"].update(max_epochs=25, patience=25, limit_train_batches=None)
    params, layout = one_task(raw, tmp_path)
    download(params.data, layout)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    decisions, seen = [], []
    for split_seed in (2, 10):
        raw["data"]["split_seed"] = split_seed
        params, _ = one_task(raw, tmp_path)
        prepare(params.data, params.prepare, layout)
        fits.train(params, "gru", layout)
        seen.append(read_seen(layout.model_dir("gru", SEED)))
        examples = read_test_examples(layout.prepared)
        decisions.append(judge(client, layout.model_dir("gru", SEED), examples, "abc123"))
    first, second = decisions
    assert first.champion_version is None and first.evidence.excluded == 0
    left_out = [ex for ex in examples if any(s.saw(ex) for s in seen)]
    assert first.learned and 0 < len(left_out) < len(examples)
    assert second.champion_version == first.version
    assert (second.evidence.examples, second.evidence.excluded) == (
        len(examples) - len(left_out), len(left_out))
    assert f"{len(left_out)} left out as seen in training" in second.words()


def test_predict_refuses_a_model_of_another_kind_of_task(trained, tmp_path, monkeypatch):
    """A sentiment classifier asked for POS tags answered with sentiment labels (and a tagger
    asked for sentiment with tags), exit 0."""
    params, layout, *_ = trained
    raw = yaml.safe_load((layout.root / "params.yaml").read_text())
    raw["tasks"].append("pos")
    raw["task"]["pos"] = {"data": {"dataset": "brown_pos"}, "prepare": {}, "model": {},
                          "train": {}}
    write_params(tmp_path, raw)
    monkeypatch.chdir(tmp_path)
    folder = layout.model_dir("gru", SEED)
    result = CliRunner().invoke(app, ["predict", "--task", "pos", "--model", str(folder),
                                      "a fine film"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"error: --model {folder}: a classification model (trained for task '{params.name}'), "
        "but task 'pos' is tagging; name one of pos's models")


def test_blank_input_lines_are_skipped_and_named(tmp_path, capsys):
    """Blank lines carry no text: they are skipped, and stderr names them, so that the
    predictions (one per remaining line) can be traced back to the file."""
    plain = tmp_path / "texts.txt"
    plain.write_text("a tender film\n\n   \ntedious\n")
    reader = load_params(ROOT / "params.yaml").data.reader
    assert read_inputs(plain, reader) == [{"text": "a tender film"}, {"text": "tedious"}]
    assert (f"{plain}: 2 blank line(s) skipped (line 2, 3); one prediction per remaining "
            "line, in order") in capsys.readouterr().err
    lines = tmp_path / "texts.jsonl"
    lines.write_text('{"text": "fine"}\n\n{"text": "dull"}\n')
    assert len(read_inputs(lines, reader)) == 2
    assert "1 blank line(s) skipped (line 2)" in capsys.readouterr().err
    plain.write_text("no blank line\n")
    read_inputs(plain, reader)
    assert capsys.readouterr().err == ""


TEXT = ROOT / "tests" / "data" / "brown_text_sample.txt"


def lm_params(tmp_path: Path, **train: object) -> dict:
    """tiny_params as one language-modelling task on the Brown text sample, a document of
    every 4 sentences: ~30 test documents to resample (its 20 documents would leave 3)."""
    lines = [ln for ln in TEXT.read_text(encoding="utf-8").splitlines() if ln.strip()]
    path = tmp_path / "brown_by_4.txt"
    path.write_text("\n\n".join("\n".join(lines[i:i + 4]) for i in range(0, len(lines), 4))
                    + "\n", encoding="utf-8")
    raw = tiny_params(path)
    raw["tasks"] = ["lm"]
    raw["task"] = {"lm": {"data": {"dataset": "text", "source": {"kind": "local",
                                                                 "path": str(path)}},
                          "prepare": {}, "model": {"bidirectional": False, "dropout": 0.1},
                          "train": {"batch_size": 8, "bptt": 12, "lr": 0.01,
                                    "limit_train_batches": None, "max_epochs": 4,
                                    "patience": 4, **train}}}
    return raw


def lm_task(folder: Path, raw: dict) -> tuple:
    write_params(folder, raw)
    params = load_params(folder / "params.yaml").for_task("lm")
    return params, Layout(folder, "lm")


@pytest.fixture(scope="module")
def language_model(tmp_path_factory) -> tuple:
    """A GRU language model trained on the text sample, logged to the project's store."""
    folder = tmp_path_factory.mktemp("lm")
    params, layout = lm_task(folder, lm_params(folder))
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    record = fits.train(params, "gru", layout)
    return params, layout, record


def test_a_language_models_perplexity_of_a_text_is_the_hand_value(language_model, tmp_path):
    """A copy whose every weight is zero but the output bias predicts the same distribution p
    at every step: `predict`'s perplexity of a text is exp(-mean log p) over its words (an
    unknown one as <unk>) and its end."""
    _, layout, _ = language_model
    folder = shutil.copytree(layout.model_dir("gru", SEED), tmp_path / "flat")
    weights = torch.load(folder / WEIGHTS_FILE, weights_only=True)
    vocab = Vocab.load(folder / VOCAB_FILE)
    torch.manual_seed(0)
    p = torch.rand(len(vocab)) + 0.1
    p /= p.sum()
    flat = {k: torch.zeros_like(v) for k, v in weights.items()}
    flat["head.bias"] = p.log()
    torch.save(flat, folder / WEIGHTS_FILE)
    text = "The jury said the zyzzyva was fine"
    [row] = Predictor(folder).predict([{"text": text}])
    targets = [*vocab.encode(text.lower().split()), vocab.stoi[EOS]]
    hand = math.exp(-sum(math.log(p[t]) for t in targets) / len(targets))
    assert row["tokens_scored"] == 8 and vocab.stoi["jury"] != UNK_ID
    assert row["unknown_words"] == targets.count(UNK_ID) >= 1  # zyzzyva
    assert row["perplexity"] == pytest.approx(hand, rel=1e-4)
    assert row["log_likelihood"] == pytest.approx(-len(targets) * math.log(hand), rel=1e-4)


def test_a_language_model_scores_and_continues_texts_alike_in_predict_and_served(
        language_model, tmp_path, monkeypatch):
    """`predict` scores each text (its perplexity, read alone as a sentence); the served
    MLflow Model gives the same numbers, and with the `generate` param the same continuation
    as `rnnbench generate` with that seed."""
    _, layout, record = language_model
    folder = str(layout.model_dir("gru", SEED))
    texts = [" ".join(ex["tokens"]) for ex in read_test_examples(layout.prepared)[:4]]
    out = tmp_path / "scores.jsonl"
    run_predict(layout.root, "--task", "lm", "--model", folder, *texts, "--output", str(out),
                monkeypatch=monkeypatch)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == texts
    assert all(r["perplexity"] == pytest.approx(math.exp(-r["log_likelihood"]
                                                         / r["tokens_scored"]), rel=1e-5)
               for r in rows)
    options = ["--tokens", "8", "--seed", "3", "--temperature", "0.8", "--top-k", "50"]
    generated = CliRunner().invoke(app, ["generate", "--task", "lm", "--model", folder,
                                         "--prompt", "the jury said", *options])
    assert generated.exit_code == 0, generated.output
    continued = generated.output.strip()
    assert continued.startswith("the jury said ") and len(continued.split()) == 3 + 8
    with served(layout, record.run_id) as port:
        scored = invoke(port, [{"text": t} for t in texts])
        drawn = invoke(port, [{"text": "the jury said"}], {"generate": 8, "seed": 3,
                                                           "temperature": 0.8, "top_k": 50})
    for mine, theirs in zip(rows, scored, strict=True):
        assert theirs["tokens_scored"] == mine["tokens_scored"]
        assert theirs["perplexity"] == pytest.approx(mine["perplexity"], rel=1e-5)
    assert drawn == [{"text": continued}]


def test_a_language_model_is_judged_against_its_unigram_then_its_champion(
        tmp_path, monkeypatch):
    """A model of uniform next-token odds did not learn (its training text's unigram is far
    better) and is not registered; a trained one is the first champion, which `generate
    --model champion` then uses; a challenger with a larger vocabulary is compared with it on
    the words both vocabularies know (and their ends), the unigram too."""
    params, layout = lm_task(tmp_path, lm_params(tmp_path))
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    fits.train(params, "gru", layout)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    examples = read_test_examples(layout.prepared)
    trained = layout.model_dir("gru", SEED)
    uniform = shutil.copytree(trained, tmp_path / "uniform")
    weights = torch.load(uniform / WEIGHTS_FILE, weights_only=True)
    torch.save({k: torch.zeros_like(v) for k, v in weights.items()}, uniform / WEIGHTS_FILE)
    flat = judge(client, uniform, examples, "abc123")
    assert flat.version is None and not flat.learned and flat.challenger < flat.evidence.baseline
    assert flat.words().startswith("nothing registered: gru seed 42 did not learn, perplexity")
    assert "for the unigram of its training text" in flat.words()
    assert not client.search_model_versions("name = 'rnnbench-lm'")
    first = judge(client, trained, examples, "abc123")
    assert first.promoted and first.champion_version is None and first.evidence.baseline_p < 0.05
    assert first.words().startswith("first champion: gru seed 42 (v1), perplexity")
    monkeypatch.chdir(tmp_path)
    champion = CliRunner().invoke(app, ["generate", "--task", "lm", "--model", "champion",
                                        "--prompt", "the jury", "--tokens", "5"])
    assert champion.exit_code == 0 and len(champion.output.split()) == 2 + 5, champion.output

    raw = lm_params(tmp_path, max_epochs=6)
    raw["task"]["lm"]["prepare"] = {"min_freq": 1}
    wider, _ = lm_task(tmp_path, raw)
    prepare(wider.data, wider.prepare, layout)
    fits.train(wider, "rnn", layout)
    challenger = layout.model_dir("rnn", SEED)
    models = [Predictor(f) for f in (challenger, trained)]
    assert len(models[0].vocab) > len(models[1].vocab)
    new = read_test_examples(layout.prepared)
    inputs = [{"tokens": ex["tokens"]} for ex in new]
    (a, b), base = lm_scores([m.score(inputs) for m in models],
                             unigram_of(read_seen(challenger), models[0]))
    ids = [[m.sentence_ids(x, "")[1:-1] for m in models] for x in inputs]
    known = [sum(all(w[j] != UNK_ID for w in both) for j in range(len(both[0]))) + 1
             for both in ids]
    assert a[1].tolist() == b[1].tolist() == base[1].tolist() == known
    assert sum(known) < sum(len(x["tokens"]) + 1 for x in inputs)  # some words were left out
    second = judge(client, challenger, new, "abc123")
    assert second.champion_version == first.version and str(second.version) == "2"
    assert second.words().startswith(("promoted: challenger rnn", "kept the champion"))
