"""`tg.checkpoint` refuses a block whose second run differs from its first (CheckpointError)."""

import random

import pytest
import torch

import tapegrad as tg

F64 = torch.float64


def _mutating(t, w):
    t.data.add_(1.0)  # changes its input behind the tape's back
    return (t * w).sum()


def test_a_block_that_mutates_its_input_is_refused_naming_the_checkpoint_call():
    t = tg.tensor([1.0, 2.0, 3.0], dtype=F64)
    w = tg.tensor([1.0, 1.0, 1.0], dtype=F64, requires_grad=True)
    with tg.Tape() as tape:
        loss = tg.checkpoint(_mutating, t, w)  # the line the error names
    line = test_a_block_that_mutates_its_input_is_refused_naming_the_checkpoint_call.__code__.co_firstlineno + 4
    with pytest.raises(tg.CheckpointError) as err:
        tape.gradient(loss, w)
    message = str(err.value)
    assert message.startswith("checkpoint(_mutating), checkpointed at ")
    assert f"test_checkpoint_purity.py:{line} in test_a_block" in message
    assert "changed a tensor it reads in place ((3,) float64 cpu, version" in message
    assert isinstance(err.value, tg.TapeError)


def test_a_block_that_draws_from_python_random_is_refused():
    rng = random.Random(0)

    def noisy(x):
        return (x * rng.uniform(1.0, 2.0)).sum()

    x = tg.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    with tg.Tape() as tape:
        loss = tg.checkpoint(noisy, x)
    with pytest.raises(tg.CheckpointError, match=r"differs from its first: output \(\) float64 cpu differs in 1"):
        tape.gradient(loss, x)


def test_a_block_whose_output_changes_shape_is_refused():
    calls = []

    def growing(x):
        calls.append(1)
        return x[: len(calls)] * 2

    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with tg.Tape() as tape:
        y = tg.checkpoint(growing, x)
    with pytest.raises(tg.CheckpointError, match=r"output \(1,\) float32 cpu then \(2,\) float32 cpu"):
        tape.gradient(y, x, grad_output=tg.tensor([1.0]))


def test_tolerance_accepts_a_small_difference_and_only_that():
    wobble = iter([0.0, 1e-12, 0.0, 1e-3])

    def block(x):
        return (x * (1.0 + next(wobble))).sum()

    x = tg.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    with tg.Tape() as tape:
        loss = tg.checkpoint(block, x, tolerance=1e-9)
    assert torch.allclose(tape.gradient(loss, x).data, torch.ones(2, dtype=F64))
    with tg.Tape() as tape:
        loss = tg.checkpoint(block, x, tolerance=1e-9)
    with pytest.raises(tg.CheckpointError, match="differs in 1 element"):
        tape.gradient(loss, x)


def test_the_check_runs_in_the_recorded_replay_too():
    t = tg.tensor([1.0, 2.0, 3.0], dtype=F64)
    w = tg.tensor([1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    with tg.Tape(), tg.Tape() as tape:  # an outer tape records the replay (higher order)
        loss = tg.checkpoint(_mutating, t, w)
        with pytest.raises(tg.CheckpointError, match="in place"):
            tape.gradient(loss, w)


def test_a_pure_block_with_nan_in_its_output_passes():
    def block(x):
        return x.log()  # log(-1) is NaN in both runs

    x = tg.tensor([-1.0, 2.0], dtype=F64, requires_grad=True)
    with tg.Tape() as tape:
        y = tg.checkpoint(block, x)
    g = tape.gradient(y, x, grad_output=tg.tensor([0.0, 1.0], dtype=F64))
    assert torch.equal(g.data, torch.tensor([-0.0, 0.5], dtype=F64))


@pytest.mark.parametrize("tolerance", [-1.0, float("nan"), "0", True])
def test_a_bad_tolerance_is_refused(tolerance):
    with pytest.raises(ValueError, match="checkpoint: tolerance must be a number >= 0"):
        tg.checkpoint(lambda x: x, tg.tensor([1.0]), tolerance=tolerance)
