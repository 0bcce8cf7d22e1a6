import random

import pytest
import torch

from pipeline.data.loading import BucketBatchSampler, EncodedSplit, collate, padding_fraction
from pipeline.data.text import PAD_ID, encode_split


def lengths(n=1000, seed=0):
    rng = random.Random(seed)
    return [rng.randint(1, 60) for _ in range(n)]


def test_bucketing_yields_every_index_once_in_full_batches():
    lens = lengths()
    batches = list(BucketBatchSampler(lens, batch_size=32, pool=10, seed=1))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lens)))
    assert sum(len(b) < 32 for b in batches) <= -(-len(lens) // (32 * 10))  # one short per pool
    assert len(BucketBatchSampler(lens, 32)) == -(-len(lens) // 32)


def test_bucketing_cuts_padding_against_random_batches():
    lens = lengths()
    bucketed = list(BucketBatchSampler(lens, batch_size=32, pool=50, seed=1))
    order = list(range(len(lens)))
    random.Random(1).shuffle(order)
    plain = [order[i:i + 32] for i in range(0, len(order), 32)]
    assert padding_fraction(lens, bucketed) < 0.1 < 0.3 < padding_fraction(lens, plain)


def test_bucketing_is_seeded_and_reshuffles_each_epoch():
    lens = lengths()
    a, b = BucketBatchSampler(lens, 16, seed=5), BucketBatchSampler(lens, 16, seed=5)
    first = list(a)
    assert first == list(b)
    assert list(a) != first  # the next epoch differs


def test_collate_pads_and_keeps_lengths_on_cpu():
    ids, lens, labels, _ = collate([(torch.tensor([4, 5, 6]), 1), (torch.tensor([7]), 0)])
    assert ids.tolist() == [[4, 5, 6], [7, PAD_ID, PAD_ID]]
    assert lens.tolist() == [3, 1] and lens.dtype == torch.int64 and lens.device.type == "cpu"
    assert labels.tolist() == [1, 0]


def test_encoded_split_round_trip(tmp_path):
    torch.save(encode_split([[2, 3], [4, 5, 6]], [0, 1]), tmp_path / "s.pt")
    split = EncodedSplit(tmp_path / "s.pt")
    assert len(split) == 2
    assert split[1][0].tolist() == [4, 5, 6] and split[1][1] == 1
    assert split.lengths.tolist() == [2, 3]


def test_no_two_seeds_share_a_batch_order_in_any_epoch():
    """Seed s at epoch k+1 once replayed seed s+1 at epoch k (the shuffle took seed + epoch)."""
    lens = list(range(1, 201))
    orders = set()
    for seed in range(4):
        sampler = BucketBatchSampler(lens, 16, seed=seed)
        for epoch in range(4):
            sampler.set_epoch(epoch)
            orders.add(tuple(map(tuple, sampler)))
    assert len(orders) == 16


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_processes_share_out_one_order_of_batches(world):
    """Every process draws the same batches and keeps every world-th, as many each."""
    lengths = torch.randint(1, 40, (1000,))
    whole = list(BucketBatchSampler(lengths, 32, pool=5, seed=7))
    shares = [list(BucketBatchSampler(lengths, 32, pool=5, seed=7, rank=r, world=world))
              for r in range(world)]
    kept = len(whole) // world * world
    assert [len(s) for s in shares] == [kept // world] * world
    assert all(len(BucketBatchSampler(lengths, 32, rank=r, world=world)) == kept // world
               for r in range(world))
    assert sorted(tuple(b) for s in shares for b in s) == sorted(map(tuple, whole[:kept]))
