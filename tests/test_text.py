import itertools

import pytest

from pipeline.data.text import (
    MAX_WORD_CHARS,
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    Vocab,
    encode_split,
    spelling,
    tokenize,
)
from pipeline.errors import RnnbenchError


@pytest.mark.parametrize(("text", "tokens"), [
    ("A gripping, well-made film!", ["a", "gripping", ",", "well-made", "film", "!"]),
    ("It isn't bad... 10/10", ["it", "isn't", "bad", ".", ".", ".", "10", "/", "10"]),
    ("Great.<br /><br />Really", ["great", ".", "really"]),
    ("Amélie's charm", ["amélie's", "charm"]),
    ("snake_case __x__", ["snake", "case", "x"]),  # underscores separate, never tokens
    ("", []),
])
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_tokenize_can_keep_case():
    assert tokenize("Hello World", lowercase=False) == ["Hello", "World"]


def test_vocab_orders_by_frequency_then_alphabet_and_applies_limits():
    texts = [["b", "a", "c"], ["a", "b"], ["a", "d"]]
    assert Vocab.build(texts).itos == [PAD, UNK, "a", "b", "c", "d"]
    assert Vocab.build(texts, min_freq=2).itos == [PAD, UNK, "a", "b"]
    assert Vocab.build(texts, max_size=1).itos == [PAD, UNK, "a"]


def test_encode_decode_round_trip_and_unknowns(tmp_path):
    vocab = Vocab.build([["the", "film", "works"]])
    ids = vocab.encode(["the", "film", "fails"])
    assert ids[2] == UNK_ID and PAD_ID not in ids
    assert vocab.decode(ids) == ["the", "film", UNK]
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json").itos == vocab.itos


def test_vocab_load_rejects_malformed_file(tmp_path):
    bad = tmp_path / "vocab.json"
    bad.write_text('["a", "b"]')
    with pytest.raises(RnnbenchError, match=r"vocab\.json: expected a JSON list starting with"):
        Vocab.load(bad)


def test_encode_split_offsets_recover_each_sequence():
    seqs = [[5, 6, 7], [8], [], [9, 10]]
    blob = encode_split(seqs, [1, 0, 1, 0])
    offsets = blob["offsets"].tolist()
    assert offsets == [0, 3, 4, 4, 6]
    rebuilt = [blob["ids"][a:b].tolist() for a, b in itertools.pairwise(offsets)]
    assert rebuilt == seqs
    assert blob["labels"].tolist() == [1, 0, 1, 0]


def test_long_words_keep_their_prefix_and_suffix():
    assert spelling("Walking") == list("Walking")
    word = "internationalization-friendliness"
    cut = "".join(spelling(word))
    assert len(cut) == MAX_WORD_CHARS and word.startswith(cut[:10]) and word.endswith(cut[10:])
