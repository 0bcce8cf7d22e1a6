import csv
import random
from collections import Counter

from pipeline.config import DataParams
from pipeline.data.duplicates import keep_copies_together
from pipeline.data.prepare import split_examples
from pipeline.data.splits import grouped_split
from tests.conftest import repo_params


def make_groups(n_groups=60, per_group=(1, 9)):
    groups = []
    for g in range(n_groups):
        groups += [f"movie{g}"] * (per_group[0] + g % per_group[1])
    return groups


def split_by_group(groups, splits):
    return {groups[i]: name for name, idx in splits.items() for i in idx}


def test_no_group_spans_two_splits_and_every_example_is_used():
    groups = make_groups()
    splits = grouped_split(groups, 0.1, 0.1, seed=3)
    seen = {name: {groups[i] for i in idx} for name, idx in splits.items()}
    assert not (seen["train"] & seen["val"] or seen["train"] & seen["test"]
                or seen["val"] & seen["test"])
    assert sorted(i for idx in splits.values() for i in idx) == list(range(len(groups)))


def test_split_sizes_follow_the_fractions():
    groups = make_groups(3000)
    splits = grouped_split(groups, 0.1, 0.2, seed=0)
    n = len(groups)
    assert abs(len(splits["test"]) - 0.2 * n) < 0.03 * n
    assert abs(len(splits["val"]) - 0.1 * n) < 0.03 * n


def test_split_is_reproducible_and_seed_dependent():
    groups = make_groups()
    assert grouped_split(groups, 0.1, 0.1, 7) == grouped_split(groups, 0.1, 0.1, 7)
    assert grouped_split(groups, 0.1, 0.1, 7) != grouped_split(groups, 0.1, 0.1, 8)


def test_growing_data_never_moves_an_old_group_and_new_groups_fill_every_split():
    """200 random datasets, each grown by new groups and new members of old ones inserted at
    random places: every old group keeps its split, and the new groups land in each split
    about as often as its fraction says."""
    rng = random.Random(0)
    landed: Counter[str] = Counter()
    for trial in range(200):
        old = [f"film{rng.randrange(40)}" for _ in range(rng.randrange(1, 120))]
        new_names = [f"new{trial}-{k}" for k in range(rng.randrange(1, 30))]
        grown = list(old)
        for name in [*new_names, *rng.sample(old, min(len(old), 10))]:
            grown.insert(rng.randrange(len(grown) + 1), name)
        before = split_by_group(old, grouped_split(old, 0.1, 0.2, seed=trial))
        after = split_by_group(grown, grouped_split(grown, 0.1, 0.2, seed=trial))
        assert all(after[g] == split for g, split in before.items())
        landed.update(after[g] for g in set(new_names))
    total = sum(landed.values())
    assert abs(landed["test"] / total - 0.2) < 0.03 and abs(landed["val"] / total - 0.1) < 0.03


def test_rows_without_a_group_keep_their_split_when_rows_are_added_above_them():
    """A row that is its own group is keyed by its text, not its line, and an appended copy of
    an old text joins the old one's split instead of moving it."""
    data = DataParams.model_validate(repo_params()["data"])
    rng = random.Random(1)
    rows = [{"text": f"review number {i}", "label": "pos"} for i in range(300)]
    grown = list(rows)
    for i in range(100):
        grown.insert(rng.randrange(len(grown) + 1), {"text": f"a new review {i}", "label": "neg"})
    grown += [dict(rows[i]) for i in rng.sample(range(300), 20)]  # copies, appended

    def placed(examples):
        index, _ = keep_copies_together(split_examples(examples, data), examples, False)
        return {examples[i]["text"]: name for name, idx in index.items() for i in idx}

    before, after = placed(rows), placed(grown)
    assert all(after[text] == split for text, split in before.items())
    assert set(before.values()) == {"train", "val", "test"}


def test_a_model_never_counts_its_own_test_split_as_seen(tmp_path):
    """seen.json holds the training and validation texts and the groups split there; a copy
    moved into training (here a review two films share) does not make its film's other
    reviews seen, so a model's own test split is judged whole."""
    from pipeline.data.prepare import download, prepare, read_test_examples
    from pipeline.data.seen import read_seen
    from tests.conftest import one_task, tiny_params

    rows = [(f"film {f} review {r} is {'good' if r % 2 else 'bad'}", "pos" if r % 2 else "neg",
             f"film{f}") for f in range(60) for r in range(5)]
    rows += [("the same line in every film", "pos", f"film{f}") for f in range(60)]
    data = tmp_path / "reviews.csv"
    with open(data, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("review", "sentiment", "film"), *rows])
    raw = tiny_params(data)
    raw["data"].update(dataset="csv", source={"kind": "local", "path": str(data)})
    raw["data"]["reader"].update(text_column="review", label_column="sentiment",
                                 group_column="film")
    params, layout = one_task(raw, tmp_path)
    download(params.data, layout)
    prepare(params.data, params.prepare, layout)
    test, seen = read_test_examples(layout.prepared), read_seen(layout.prepared)
    assert len({ex["group"] for ex in test}) > 3 and not any(seen.saw(ex) for ex in test)
