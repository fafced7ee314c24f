"""nn.parallel: DistributedDataParallel on 2 local gloo processes against one process with the whole batch."""

from __future__ import annotations

import parallel_workers as pw
import pytest
import torch

import nn
from nn.parallel import DistributedDataParallel, DistributedError, spawn
from tapegrad import Tape


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both ranks' results of `parallel_workers.scenarios` (one spawn for all; it ends with a failing rank)."""
    out = tmp_path_factory.mktemp("ddp")
    try:
        spawn(pw.scenarios, 2, (str(out),), timeout=30, grace=60)
    except DistributedError as err:
        torch.save(str(err), out / "spawn-rank0.pt")

    def load(name: str, rank: int):
        return torch.load(out / f"{name}-rank{rank}.pt", weights_only=False)

    return load


def _close(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=name)


def test_two_ranks_with_batch_10_equal_one_process_with_batch_20(runs):
    reference = pw.model(seed=0)  # rank 0's start; rank 1 started elsewhere and got it by broadcast
    sampler = nn.data.DistributedSampler(pw.data(), num_replicas=1, rank=0, seed=pw.SAMPLER_SEED)
    opt = nn.SGD(reference.parameters(), lr=0.2, momentum=0.9)
    nn.fit(reference, nn.CrossEntropyLoss(), opt, pw.data(), epochs=2, batch_size=2 * pw.PER_RANK_BATCH,
           progress=False, sampler=sampler)  # fmt: skip
    start = pw.params(pw.model(seed=0))
    for rank in (0, 1):
        result = runs("fit", rank)
        assert result["buckets"] > 1
        _close(result["params"], pw.params(reference))
        assert max((result["params"][n] - start[n]).abs().max() for n in start) > 1e-2  # it did train
    shards = [runs("fit", r)["shard"] for r in (0, 1)]
    assert len(set(shards[0].tolist()) | set(shards[1].tolist())) == pw.N  # disjoint shards cover the data


def test_no_sync_accumulation_equals_one_big_step(runs):
    reference = pw.model(seed=0)
    opt = nn.SGD(reference.parameters(), lr=0.2)
    x, y = pw.data()
    shards = [torch.arange(pw.N)[r::2] for r in (0, 1)]
    b = pw.PER_RANK_BATCH
    first_half = shards[0][: b // 2]
    with Tape() as tape:
        loss = nn.CrossEntropyLoss()(reference(x[first_half]), y[first_half]) * 0.5
    local = dict(zip([n for n, _ in reference.named_parameters()], tape.gradient(loss, list(reference.parameters()))))
    for step in range(5):
        idx = torch.cat([s[step * b : (step + 1) * b] for s in shards])
        with Tape() as tape:
            loss = nn.CrossEntropyLoss()(reference(x[idx]), y[idx])
        tape.backward(loss)
        opt.step()
        opt.zero_grad()
    results = [runs("no_sync", r) for r in (0, 1)]
    for result in results:
        _close(result["params"], pw.params(reference))
    _close(results[0]["local_grads"], {n: g.data for n, g in local.items()}, atol=1e-12)  # not averaged
    assert not torch.equal(results[0]["local_grads"]["0.weight"], results[1]["local_grads"]["0.weight"])


def test_parameters_that_differ_at_start_are_reported_on_every_rank(runs):
    for rank in (0, 1):
        checks = runs("checks", rank)
        assert checks["values"].startswith("ParameterMismatchError")
        assert "values differ from rank 0's at the start (rank 1: " in checks["values"]
        assert "0.weight" in checks["values"] and "init_sync=True" in checks["values"]
        assert checks["shapes"].startswith("ParameterMismatchError")
        assert "rank 0 has 0.weight (16, 2) float64, rank 1 has 0.weight (17, 2) float64" in checks["shapes"]
        assert checks["alike"] == "no error"


def test_a_rank_that_raises_fails_the_others_instead_of_hanging(runs):
    message = runs("spawn", 0)  # what spawn raised: a DistributedError naming both ranks
    assert "2 of 2 processes failed, first rank 1" in message
    assert "rank 1: ValueError: rank 1 gave up on purpose" in message
    rank0 = runs("failing", 0)
    assert rank0.startswith("DistributedError: DistributedDataParallel: the all-reduce of gradient bucket 0")
    assert "failed on rank 0 of 2: another rank stopped" in rank0


def test_construction_needs_a_process_group_and_a_positive_bucket_size():
    with pytest.raises(RuntimeError, match="needs a torch.distributed process group"):
        DistributedDataParallel(pw.model(seed=0))
    with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number, got 0"):
        DistributedDataParallel(pw.model(seed=0), bucket_cap_mb=0)
    with pytest.raises(TypeError, match="wraps an nn.Module, got list"):
        DistributedDataParallel([])
    with pytest.raises(ValueError, match="nprocs must be a positive integer, got 0"):
        spawn(pw.failing, 0)


def test_train_nproc_2_prints_the_table_once(tmp_path, capfd):
    from tapegrad.cli import main

    ckpt = tmp_path / "model.safetensors"
    argv = ["train", "--nproc", "2", "--epochs", "2", "--n-train", "100", "--n-test", "100", "--save", str(ckpt)]
    assert main(argv) == 0  # the ranks are child processes: capfd sees their output
    lines = capfd.readouterr().out.splitlines()
    assert lines[0].startswith("tapegrad train: 2-25-25-25-2 relu/tanh") and "batch 10 per process x 2" in lines[0]
    assert sum(line.startswith("round") for line in lines) == 1  # only rank 0 prints
    assert lines[-1] == f"wrote {ckpt}" and ckpt.stat().st_size > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nproc", "0"], "argument --nproc: expected a positive integer, got '0'"),
        (["--nproc", "3", "--n-train", "100"], "--nproc 3 does not divide --n-train 100"),
    ],
)
def test_bad_nproc_exits_2_before_starting_anything(argv, message, capsys):
    from tapegrad.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def group_of_one(tmp_path):
    """A gloo process group of this process alone (rank 0 of 1), destroyed afterwards."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


class TwoHeads(nn.Module):
    """A model whose second head gets no gradient when only the first is used."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(2, 4)
        self.head = nn.Linear(4, 2)
        self.spare = nn.Linear(4, 2)

    def forward(self, x, spare: bool = False):
        h = self.body(x).tanh()
        return self.spare(h) if spare else self.head(h)


def _backward(ddp, x, y, **kwargs):
    with Tape() as tape:
        loss = nn.CrossEntropyLoss()(ddp(x, **kwargs), y)
    tape.backward(loss)


def test_a_parameter_without_gradient_needs_wait_and_is_named_otherwise(group_of_one):
    torch.manual_seed(0)
    model = TwoHeads()
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.00005)  # 50 bytes: a bucket per parameter
    x, y = pw.data()
    _backward(ddp, x[:8].float(), y[:8])
    with pytest.raises(DistributedError, match="no gradient arrived for spare.bias, spare.weight"):
        ddp(x[:8].float())
    ddp.wait()
    assert model.spare.weight.grad is None and model.head.weight.grad is not None
    model.zero_grad()
    _backward(ddp, x[:8].float(), y[:8])
    ddp.wait()
    _backward(ddp, x[:8].float(), y[:8], spare=False)  # the next pass runs again after wait()


def test_every_backward_outside_no_sync_averages_and_inside_only_accumulates(group_of_one):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3))
    ddp = DistributedDataParallel(model)
    x, y = pw.data()
    xb = x[:6].float()
    with Tape(persistent=True) as tape:
        loss = nn.CrossEntropyLoss()(ddp(xb), y[:6])
    tape.backward(loss)
    first = model[0].weight.grad.data.clone()
    tape.backward(loss)  # the first pass finished its all-reduce: the second one averages again
    torch.testing.assert_close(model[0].weight.grad.data, 2 * first)
    with ddp.no_sync():
        _backward(ddp, xb, y[:6])
    torch.testing.assert_close(model[0].weight.grad.data, 3 * first)
