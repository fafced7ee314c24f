"""nn.data.DistributedSampler: shards, epochs, bad input, and batches of R ranks = one R-times batch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import nn
from nn.data import Batches, DistributedSampler


@given(st.integers(1, 5).flatmap(lambda r: st.tuples(st.just(r), st.integers(1, 30).map(lambda k: k * r))))
def test_ranks_get_disjoint_equal_shards_that_cover_the_data(case):
    ranks, n = case
    shards = [DistributedSampler(n, num_replicas=ranks, rank=r, seed=3).indices() for r in range(ranks)]
    assert all(len(s) == n // ranks for s in shards)
    assert sorted(torch.cat(shards).tolist()) == list(range(n))


def test_set_epoch_reshuffles_the_same_way_on_every_rank():
    a, b = (DistributedSampler(40, num_replicas=2, rank=r, seed=1) for r in (0, 1))
    first = a.indices()
    a.set_epoch(1)
    b.set_epoch(1)
    assert not torch.equal(first, a.indices())
    assert sorted(torch.cat([a.indices(), b.indices()]).tolist()) == list(range(40))
    again = DistributedSampler(40, num_replicas=2, rank=0, seed=1)
    again.set_epoch(1)
    assert torch.equal(again.indices(), a.indices()) and list(again) == a.indices().tolist()
    assert list(DistributedSampler(6, num_replicas=2, rank=1, shuffle=False)) == [1, 3, 5]


def test_batches_of_two_ranks_together_are_the_batches_of_one_process_with_twice_the_size():
    x, y = nn.data.disk_dataset(60, seed=2)
    one = Batches((x, y), 10, sampler=DistributedSampler((x, y), num_replicas=1, rank=0, seed=7))
    ranks = [Batches((x, y), 5, sampler=DistributedSampler((x, y), num_replicas=2, rank=r, seed=7)) for r in (0, 1)]
    assert len(one) == len(ranks[0]) == 6
    for whole, *parts in zip(one, *ranks):
        merged = torch.cat([p[1].data for p in parts])
        assert sorted(merged.tolist()) == sorted(whole[1].data.tolist())
        assert sorted(torch.cat([p[0].data for p in parts])[:, 0].tolist()) == sorted(whole[0].data[:, 0].tolist())


def test_fit_calls_set_epoch_and_uses_only_the_shard():
    x, y = nn.data.disk_dataset(40, seed=2)

    class Recording(DistributedSampler):
        epochs: list[int] = []

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)
            super().set_epoch(epoch)

    sampler = Recording((x, y), num_replicas=4, rank=3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))
    seen = []
    loss = nn.CrossEntropyLoss()

    def spy(out, target):
        seen.append(len(target))
        return loss(out, target)

    nn.fit(model, spy, nn.SGD(model.parameters(), lr=0.1), (x, y), 3, 4, progress=False, sampler=sampler)
    assert sampler.epochs == [0, 1, 2]
    assert seen == [4, 4, 2] * 3  # 10 of the 40 samples per epoch


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="10 samples do not split evenly over 3 ranks"):
        DistributedSampler(10, num_replicas=3, rank=0)
    assert len(DistributedSampler(10, num_replicas=3, rank=2, drop_last=True)) == 3
    with pytest.raises(ValueError, match=r"rank must be in \[0, 1\], got 2"):
        DistributedSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer, got 0"):
        DistributedSampler(10, num_replicas=0, rank=0)
    with pytest.raises(RuntimeError, match="torch.distributed is not initialized"):
        DistributedSampler(10)
    with pytest.raises(ValueError, match="inputs and targets differ in length: 3 and 4"):
        DistributedSampler((torch.zeros(3, 2), torch.zeros(4)), num_replicas=1, rank=0)
    with pytest.raises(ValueError, match="sampler and shuffle=True exclude each other"):
        Batches((torch.zeros(4, 2), torch.zeros(4)), 2, shuffle=True, sampler=range(4))
