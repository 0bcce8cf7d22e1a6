from pipeline.data.splits import grouped_split


def make_groups(n_groups=60, per_group=(1, 9)):
    groups = []
    for g in range(n_groups):
        groups += [f"movie{g}"] * (per_group[0] + g % per_group[1])
    return groups


def test_no_group_spans_two_splits_and_every_example_is_used():
    groups = make_groups()
    splits = grouped_split(groups, 0.1, 0.1, seed=3)
    seen = {name: {groups[i] for i in idx} for name, idx in splits.items()}
    assert not (seen["train"] & seen["val"] or seen["train"] & seen["test"]
                or seen["val"] & seen["test"])
    assert sorted(i for idx in splits.values() for i in idx) == list(range(len(groups)))


def test_split_sizes_follow_the_fractions():
    groups = make_groups(200)
    splits = grouped_split(groups, 0.1, 0.2, seed=0)
    n = len(groups)
    assert abs(len(splits["test"]) - 0.2 * n) < 0.03 * n
    assert abs(len(splits["val"]) - 0.1 * n) < 0.03 * n


def test_split_is_reproducible_and_seed_dependent():
    groups = make_groups()
    assert grouped_split(groups, 0.1, 0.1, 7) == grouped_split(groups, 0.1, 0.1, 7)
    assert grouped_split(groups, 0.1, 0.1, 7) != grouped_split(groups, 0.1, 0.1, 8)
