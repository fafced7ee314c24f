"""nn.data: the disk data set, normalisation, batches and k-fold splits."""

import math

import pytest
import torch

import nn
import tapegrad as tg
from nn.data import Batches, disk_dataset, kfold_indices, normalize


def test_disk_dataset_shapes_labels_and_seed():
    x, y = disk_dataset(2000, seed=7)
    assert isinstance(x, tg.Tensor) and isinstance(y, tg.Tensor)
    assert x.shape == (2000, 2) and x.dtype == torch.float32
    assert y.shape == (2000,) and y.dtype == torch.int64
    assert float(x.data.min()) >= 0 and float(x.data.max()) <= 1
    inside = ((x.data - 0.5) ** 2).sum(1).sqrt() < 1 / math.sqrt(2 * math.pi)
    assert torch.equal(y.data, inside.long())
    assert 0.45 < y.data.float().mean().item() < 0.55  # the disk covers half the square
    x2, y2 = disk_dataset(2000, seed=7)
    assert torch.equal(x.data, x2.data) and torch.equal(y.data, y2.data)
    assert not torch.equal(x.data, disk_dataset(2000, seed=8)[0].data)


def test_seeded_draw_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    disk_dataset(10, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_normalize_uses_training_statistics():
    xtr, _ = disk_dataset(500, seed=1)
    xte, _ = disk_dataset(500, seed=2)
    ntr, nte = normalize(xtr, xte)
    assert isinstance(ntr, tg.Tensor)
    torch.testing.assert_close(ntr.data.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(ntr.data.std(0), torch.ones(2), atol=1e-6, rtol=0)
    mean, std = xtr.data.mean(0), xtr.data.std(0)
    torch.testing.assert_close(nte.data, (xte.data - mean) / std)
    (alone,) = normalize(torch.tensor([[1.0, 2.0], [3.0, 2.0]]))
    assert isinstance(alone, torch.Tensor) and torch.isfinite(alone).all()  # constant column: no 0/0


def test_batches_cover_every_sample_once_and_reshuffle():
    x = torch.arange(23.0).reshape(23, 1)
    y = torch.arange(23)
    loader = Batches((x, y), 5, shuffle=True, seed=3)
    assert len(loader) == 5
    epoch1 = list(loader)
    assert [len(b[0]) for b in epoch1] == [5, 5, 5, 5, 3]
    seen = torch.cat([b[1] for b in epoch1])
    assert sorted(seen.tolist()) == list(range(23))
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in epoch1)  # pairs stay together
    epoch2 = torch.cat([b[1] for b in loader])
    assert not torch.equal(seen, epoch2)
    again = torch.cat([b[1] for b in Batches((x, y), 5, shuffle=True, seed=3)])
    assert torch.equal(seen, again)
    plain = torch.cat([b[1] for b in nn.data.batches((x, y), 5)])
    assert torch.equal(plain, y)
    assert len(Batches((x, y), 5, drop_last=True)) == 4
    with pytest.raises(ValueError, match="differ in length"):
        Batches((x, y[:3]), 5)


def test_batches_keep_the_tensor_kind():
    x, y = disk_dataset(10, seed=0)
    xb, yb = next(iter(Batches((x, y), 4)))
    assert isinstance(xb, tg.Tensor) and isinstance(yb, tg.Tensor)


def test_kfold_partitions():
    folds = kfold_indices(23, 5, seed=0)
    assert len(folds) == 5
    vals = torch.cat([v for _, v in folds])
    assert sorted(vals.tolist()) == list(range(23))
    for train, val in folds:
        assert len(train) + len(val) == 23
        assert not set(train.tolist()) & set(val.tolist())
    assert all(torch.equal(a[1], b[1]) for a, b in zip(folds, kfold_indices(23, 5, seed=0)))
    with pytest.raises(ValueError):
        kfold_indices(3, 5)
