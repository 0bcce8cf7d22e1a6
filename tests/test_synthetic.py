"""The generated long-range tasks: correct labels, reproducible, written like prepared data."""

import pytest

from pipeline.config import parse_params
from pipeline.data.loading import EncodedSplit
from pipeline.data.synthetic import DIGITS, FIRST, MARKED, generate, write_task
from pipeline.errors import RnnbenchError
from pipeline.files import read_json
from pipeline.paths import Layout
from tests.conftest import repo_params


def test_recall_labels_the_first_symbol():
    ids, labels, vocab, names = generate("recall", 50, 300, seed=1)
    assert ids.shape == (300, 50) and len(names) == 8
    assert [names[y] for y in labels.tolist()] == [vocab[i] for i in ids[:, 0].tolist()]
    assert ids.min() >= FIRST and len(set(ids[:, 0].tolist())) == 8


def test_adding_labels_the_sum_of_two_marked_digits_far_apart():
    length = 40
    ids, labels, vocab, names = generate("adding", length, 300, seed=1)
    tokens = [[vocab[i] for i in row] for row in ids.tolist()]
    for row, label in zip(tokens, labels.tolist(), strict=True):
        marked = [t for t, tok in enumerate(row) if tok in MARKED]
        assert len(marked) == 2
        assert marked[0] < length // 10 and marked[1] >= length // 2
        assert int(names[label]) == sum(MARKED.index(row[t]) for t in marked)
        assert all(tok in DIGITS for t, tok in enumerate(row) if t not in marked)
    assert len(set(labels.tolist())) > 10  # sums spread over 0-18


def test_generation_is_reproducible_and_each_length_is_new_data():
    a, _, _, _ = generate("recall", 20, 100, seed=3)
    b, _, _, _ = generate("recall", 20, 100, seed=3)
    c, _, _, _ = generate("recall", 21, 100, seed=3)
    assert a.equal(b) and not a.equal(c[:, :20])


def test_written_task_loads_like_prepared_data(tmp_path):
    layout = Layout(tmp_path, "recall_12")
    write_task("recall", 12, 200, 5, layout)
    test = EncodedSplit(layout.split("test"))
    stats = read_json(layout.prepared / "stats.json")
    assert len(test) == 20 and test.lengths.tolist() == [12] * 20
    assert stats["generator"] == {"problem": "recall", "length": 12, "seed": 5}
    assert sum(s["examples"] for s in stats["splits"].values()) == 200


@pytest.mark.parametrize(("change", "message"), [
    ({"lengths": [10, 1]}, "longrange.lengths: Value error, lengths of at least 2"),
    ({"problems": ["copy"]}, "longrange.problems.0: Input should be 'recall' or 'adding'"),
    ({"model": {"width": 3}}, "longrange.model.width: unknown key"),
    ({"train": {"lr": -1}}, "longrange.train.lr: Input should be greater than 0"),
])
def test_bad_longrange_params_name_the_key(change, message):
    raw = repo_params()
    raw["longrange"].update(change)
    with pytest.raises(RnnbenchError, match=message.split(":")[0]) as err:
        parse_params(raw)
    assert message.replace("Value error, ", "") in str(err.value) or message in str(err.value)
