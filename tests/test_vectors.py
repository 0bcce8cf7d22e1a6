"""Pretrained vectors: fetched (zip member over HTTP, or a local file), aligned, reported."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile

import pytest
import torch

from pipeline.data.prepare import download, prepare
from pipeline.data.text import Vocab
from pipeline.errors import RnnbenchError
from pipeline.model.networks import SentenceClassifier
from tests.conftest import one_task, tiny_params
from tests.httpserver import FileServer

WORDS = {"the": 0.1, "film": 0.2, "movie": 0.3, "Funny": 0.4, "a": 0.5}


def glove(dim: int = 16, header: bool = False, bad_line: bool = False) -> str:
    lines = [f"{len(WORDS)} {dim}"] if header else []
    lines += [" ".join([w] + [f"{v + k / 100:.4f}" for k in range(dim)]) for w, v in WORDS.items()]
    if bad_line:
        lines.append("broken 1.0 2.0")
    return "\n".join(lines) + "\n"


def prepared_with(tmp_path, sample_wheel, vectors: dict, **model):
    raw = tiny_params(sample_wheel)
    raw["prepare"]["vectors"] = vectors
    raw["model"].update(model)
    params, layout = one_task(raw, tmp_path)
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    return params, layout


def test_vectors_from_a_zip_member_over_http(tmp_path, sample_wheel, monkeypatch):
    monkeypatch.setenv("RNNBENCH_BACKOFF", "0.01")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("glove.6B.16d.txt", glove())
    data = buf.getvalue()
    with FileServer() as srv:
        srv.files["/glove.zip"] = data
        _, layout = prepared_with(tmp_path, sample_wheel, {
            "kind": "url", "url": srv.url + "/glove.zip", "md5": hashlib.md5(data).hexdigest(),
            "member": "glove.6B.16d.txt"})
    stats = json.loads((layout.prepared / "stats.json").read_text())["vectors"]
    vocab = Vocab.load(layout.prepared / "vocab.json")
    expected = {w for w in ("the", "film", "movie", "funny", "a") if w in vocab.stoi}
    assert stats["dim"] == 16 and stats["types_covered"] == len(expected)
    assert 0 < stats["train_token_coverage"] < 1
    blob = torch.load(layout.prepared / "vectors.pt", weights_only=True)
    i = vocab.stoi["funny"]  # matched through lowercasing "Funny"
    assert blob["found"][i] and blob["vectors"][i, 0].item() == pytest.approx(0.4)


def test_model_starts_from_the_vectors_and_can_freeze_them(tmp_path, sample_wheel):
    path = tmp_path / "vec.txt"
    path.write_text(glove(header=True))
    params, layout = prepared_with(tmp_path, sample_wheel, {"kind": "local", "path": str(path)},
                                   freeze_embeddings=True)
    blob = torch.load(layout.prepared / "vectors.pt", weights_only=True)
    vocab = Vocab.load(layout.prepared / "vocab.json")
    net = SentenceClassifier("gru", len(vocab), 2, params.for_cell("gru").model, blob)
    the = vocab.stoi["the"]
    assert torch.equal(net.embedding.weight[the], blob["vectors"][the])
    assert not net.embedding.weight.requires_grad


def test_dimension_mismatch_says_what_to_set(tmp_path, sample_wheel):
    path = tmp_path / "vec.txt"
    path.write_text(glove(dim=8))
    params, layout = prepared_with(tmp_path, sample_wheel, {"kind": "local", "path": str(path)})
    blob = torch.load(layout.prepared / "vectors.pt", weights_only=True)
    with pytest.raises(RnnbenchError, match=r"model.embedding_dim: 16, but prepare.vectors are "
                                            r"8-dimensional; set model.embedding_dim: 8"):
        SentenceClassifier("lstm", len(blob["found"]), 2, params.for_cell("lstm").model, blob)


def test_malformed_vectors_line_is_one_line_and_prepares_nothing(tmp_path, sample_wheel):
    path = tmp_path / "vec.txt"
    path.write_text(glove(bad_line=True))
    raw = copy.deepcopy(tiny_params(sample_wheel))
    raw["prepare"]["vectors"] = {"kind": "local", "path": str(path)}
    params, layout = one_task(raw, tmp_path)
    download(params.data, layout)
    with pytest.raises(RnnbenchError, match=r"vec.txt line 6: expected a word and 16 numbers"):
        prepare(params.data, params.prepare, layout)
    assert not layout.prepared.exists()


def test_binary_vectors_are_one_line_and_prepare_nothing(tmp_path, sample_wheel):
    path = tmp_path / "vectors.bin"  # word2vec's binary format: a text header, then raw floats
    path.write_bytes(b"3 4\nthe " + bytes(range(128, 256)) * 4)
    raw = copy.deepcopy(tiny_params(sample_wheel))
    raw["prepare"]["vectors"] = {"kind": "local", "path": str(path)}
    params, layout = one_task(raw, tmp_path)
    download(params.data, layout)
    with pytest.raises(RnnbenchError, match=r"vectors.bin: not UTF-8 text after line \d+; "
                                            r"prepare.vectors expects vectors in text form"):
        prepare(params.data, params.prepare, layout)
    assert not layout.prepared.exists()
