"""nn.data's Dataset / TensorDataset / DataLoader / random_split against torch.utils.data: the same
batches in the same order for the same seeds, and a torch training loop that ports by its imports."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.utils.data as tdata

import nn
import tapegrad as tg
from nn import data as ndata


def xy(n=23):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, generator=gen), torch.randint(0, 4, (n,), generator=gen)


def batches_of(loader, epochs=3):
    return [[tuple(t.data if isinstance(t, tg.Tensor) else t for t in b) for b in loader] for _ in range(epochs)]


def assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert len(a) == len(b)
        for p, q in zip(a, b):
            assert all(torch.equal(u, v) for u, v in zip(p, q))


@pytest.mark.parametrize(
    "options",
    [
        dict(batch_size=5),
        dict(batch_size=5, shuffle=True),
        dict(batch_size=4, shuffle=True, drop_last=True),
        dict(batch_size=32, shuffle=True),
        dict(batch_size=None),
    ],
    ids=str,
)
def test_batches_equal_torchs_for_the_same_generator(options):
    x, y = xy()
    ours = ndata.DataLoader(ndata.TensorDataset(x, y), generator=torch.Generator().manual_seed(3), **options)
    theirs = tdata.DataLoader(tdata.TensorDataset(x, y), generator=torch.Generator().manual_seed(3), **options)
    assert len(ours) == len(theirs)
    assert_same(batches_of(ours), batches_of(theirs))


def test_without_a_generator_the_global_seed_decides_as_in_torch():
    x, y = xy()
    torch.manual_seed(7)
    ours = batches_of(ndata.DataLoader(ndata.TensorDataset(x, y), batch_size=6, shuffle=True), 2)
    after_ours = torch.rand(1)
    torch.manual_seed(7)
    theirs = batches_of(tdata.DataLoader(tdata.TensorDataset(x, y), batch_size=6, shuffle=True), 2)
    assert_same(ours, theirs)
    assert torch.equal(after_ours, torch.rand(1))  # the global RNG moved by the same draws


class Squares(ndata.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"x": float(i), "pair": (i, torch.tensor([i, i * i]))}


class TorchSquares(tdata.Dataset):
    __len__, __getitem__ = Squares.__len__, Squares.__getitem__


def test_default_collate_and_samplers_match_torch():
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    ours = list(ndata.DataLoader(Squares(), batch_size=4, shuffle=True, generator=gen()))
    theirs = list(tdata.DataLoader(TorchSquares(), batch_size=4, shuffle=True, generator=gen()))
    for a, b in zip(ours, theirs):
        assert torch.equal(a["x"], b["x"]) and a["x"].dtype == b["x"].dtype
        assert torch.equal(a["pair"][0], b["pair"][0]) and torch.equal(a["pair"][1], b["pair"][1])
    sampler = ndata.RandomSampler(range(10), replacement=True, num_samples=40, generator=gen())
    assert list(sampler) == list(tdata.RandomSampler(range(10), replacement=True, num_samples=40, generator=gen()))
    batch_sampler = ndata.BatchSampler(ndata.SequentialSampler(range(7)), 3, drop_last=False)
    loader = ndata.DataLoader(Squares(), batch_sampler=batch_sampler, collate_fn=lambda b: [s["x"] for s in b])
    assert list(loader) == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0]] and len(loader) == 3
    shard = ndata.DataLoader(ndata.TensorDataset(torch.arange(8)), batch_size=2,
                             sampler=ndata.DistributedSampler(8, num_replicas=2, rank=1, shuffle=False))  # fmt: skip
    assert [b[0].tolist() for b in shard] == [[1, 3], [5, 7]]
    with pytest.raises(ValueError, match="mutually exclusive"):
        ndata.DataLoader(Squares(), sampler=sampler, shuffle=True)


def test_tapegrad_tensors_stay_tapegrad_tensors():
    x, y = xy(6)
    dataset = ndata.TensorDataset(tg.tensor(x), y)
    for loader in (
        ndata.DataLoader(dataset, batch_size=4),
        ndata.DataLoader(dataset, 4, collate_fn=ndata.default_collate),
    ):
        xb, yb = next(iter(loader))
        assert isinstance(xb, tg.Tensor) and not xb.requires_grad and isinstance(yb, torch.Tensor)
        assert torch.equal(xb.data, x[:4])


def test_random_split_matches_torch():
    ds = ndata.TensorDataset(torch.arange(11))
    for lengths in ([3, 8], [0.5, 0.3, 0.2]):
        ours = ndata.random_split(ds, lengths, generator=torch.Generator().manual_seed(2))
        theirs = tdata.random_split(range(11), lengths, generator=torch.Generator().manual_seed(2))
        assert [list(s.indices) for s in ours] == [list(s.indices) for s in theirs]
        assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert ours[0][0][0].item() == ours[0].indices[0]
    with pytest.raises(ValueError, match="does not equal the length"):
        ndata.random_split(ds, [3, 3])


def test_subset_concat_and_iterable_datasets():
    a, b = ndata.TensorDataset(torch.arange(3)), ndata.TensorDataset(torch.arange(10, 14))
    both = a + b
    assert len(both) == 7 and both[4][0].item() == 11 and both[-1][0].item() == 13

    class Stream(ndata.IterableDataset):
        def __iter__(self):
            return iter(range(5))

    assert [t.tolist() for t in ndata.DataLoader(Stream(), batch_size=2)] == [[0, 1], [2, 3], [4]]
    assert [t.tolist() for t in ndata.DataLoader(Stream(), batch_size=2, drop_last=True)] == [[0, 1], [2, 3]]


def test_num_workers_uses_torchs_worker_processes():
    x, y = xy(10)
    ours = ndata.DataLoader(ndata.TensorDataset(x, y), batch_size=4, shuffle=True, num_workers=1,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    theirs = tdata.DataLoader(tdata.TensorDataset(x, y), batch_size=4, shuffle=True,
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert_same(batches_of(ours, 1), batches_of(theirs, 1))


def torch_loop(torch, nn, optim, DataLoader, TensorDataset, x, y, recording):
    """A torch training loop, written once: run with torch's modules or tapegrad's (``recording`` is a
    no-op context for torch, a `tg.Tape` for tapegrad: the explicit tape is the design's one difference)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    losses = []
    for _ in range(2):
        for xb, yb in loader:
            opt.zero_grad()
            with recording():
                loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def test_a_torch_training_loop_ports_with_only_its_imports_changed():
    x, y = xy(70)
    theirs = torch_loop(
        torch, torch.nn, torch.optim, tdata.DataLoader, tdata.TensorDataset, x, y, contextlib.nullcontext
    )
    ours = torch_loop(torch, nn, nn.optim, ndata.DataLoader, ndata.TensorDataset, x, y, tg.Tape)
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_fit_takes_a_data_loader():
    x, y = nn.data.disk_dataset(200, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    loader = ndata.DataLoader(ndata.TensorDataset(x, y), batch_size=20, shuffle=True,
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
    history = nn.fit(model, nn.CrossEntropyLoss(), nn.Adam(model.parameters(), lr=0.02), loader, epochs=3,
                     progress=False)  # fmt: skip
    assert len(history.loss) == 3 and len(history.error_rate) == 3 and history.loss[-1] < history.loss[0]
    with pytest.raises(ValueError, match="own batch size"):
        nn.fit(model, nn.CrossEntropyLoss(), nn.Adam(model.parameters()), loader, epochs=1, batch_size=5)
