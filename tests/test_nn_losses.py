"""Losses against torch.nn in float64: values and gradients, every reduction."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nn
import tapegrad as tg
from tapegrad.testing import tensors

TOL = dict(rtol=1e-10, atol=1e-12)
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
MATRIX = st.tuples(st.integers(1, 5), st.integers(1, 5))


def loss_and_grads(loss_fn, x, target, wrt_target=False):
    xs = tg.Tensor(x.clone(), requires_grad=True)
    tt = tg.Tensor(target.clone(), requires_grad=True) if wrt_target else target
    with tg.Tape() as tape:
        loss = loss_fn(xs, tt)
    g = torch.randn(loss.shape, dtype=torch.float64)
    sources = [xs, tt] if wrt_target else [xs]
    grads = tape.gradient(loss, sources, grad_output=tg.Tensor(g))
    return loss.data, [gr.data for gr in grads], g


def torch_loss_and_grads(loss_fn, x, target, g, wrt_target=False):
    xs = x.clone().requires_grad_(True)
    tt = target.clone().requires_grad_(True) if wrt_target else target
    loss = loss_fn(xs, tt)
    return loss.detach(), list(torch.autograd.grad(loss, [xs, tt] if wrt_target else [xs], g))


def assert_same(ours, ref):
    torch.testing.assert_close(ours[0], ref[0], **TOL)
    for a, b in zip(ours[1], ref[1]):
        torch.testing.assert_close(a, b, **TOL)


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(["MSELoss", "L1Loss"]), reduction=REDUCTIONS, shape=MATRIX, data=st.data())
def test_regression_losses_match_torch(kind, reduction, shape, data):
    x = data.draw(tensors(shape=shape, low=-3, high=3)).data
    # keep |x - target| away from 0, the kink of L1
    target = x + data.draw(tensors(shape=shape, low=0.05, high=2)).data * data.draw(st.sampled_from([-1.0, 1.0]))
    ours = loss_and_grads(getattr(nn, kind)(reduction=reduction), x, target, wrt_target=True)
    ref = torch_loss_and_grads(getattr(torch.nn, kind)(reduction=reduction), x, target, ours[2], wrt_target=True)
    assert_same(ours[:2], ref)


@settings(max_examples=30, deadline=None)
@given(reduction=REDUCTIONS, shape=st.tuples(st.integers(1, 6), st.integers(2, 5)), data=st.data())
def test_cross_entropy_with_class_indices_matches_torch(reduction, shape, data):
    x = data.draw(tensors(shape=shape, low=-5, high=5)).data
    labels = torch.tensor(data.draw(st.lists(st.integers(0, shape[1] - 1), min_size=shape[0], max_size=shape[0])))
    ours = loss_and_grads(nn.CrossEntropyLoss(reduction=reduction), x, labels)
    ref = torch_loss_and_grads(torch.nn.CrossEntropyLoss(reduction=reduction), x, labels, ours[2])
    assert_same(ours[:2], ref)
    # a tapegrad integer tensor works the same as a torch one
    again = loss_and_grads(nn.CrossEntropyLoss(reduction=reduction), x, tg.Tensor(labels))
    torch.testing.assert_close(again[0], ours[0], **TOL)


@settings(max_examples=20, deadline=None)
@given(reduction=REDUCTIONS, shape=st.tuples(st.integers(1, 5), st.integers(2, 4)), data=st.data())
def test_cross_entropy_with_probabilities_matches_torch(reduction, shape, data):
    x = data.draw(tensors(shape=shape, low=-5, high=5)).data
    probs = torch.softmax(data.draw(tensors(shape=shape)).data, dim=1)
    ours = loss_and_grads(nn.CrossEntropyLoss(reduction=reduction), x, probs, wrt_target=True)
    ref = torch_loss_and_grads(torch.nn.CrossEntropyLoss(reduction=reduction), x, probs, ours[2], wrt_target=True)
    assert_same(ours[:2], ref)


def test_cross_entropy_is_stable_for_huge_logits():
    x = torch.tensor([[1000.0, -1000.0], [-800.0, 900.0]], dtype=torch.float64)
    y = torch.tensor([1, 1])
    ours = loss_and_grads(nn.CrossEntropyLoss(), x, y)
    assert torch.isfinite(ours[0]).all() and all(torch.isfinite(g).all() for g in ours[1])
    assert_same(ours[:2], torch_loss_and_grads(torch.nn.CrossEntropyLoss(), x, y, ours[2]))


def test_signed_targets_follow_seed_002():
    t = nn.signed_targets(torch.tensor([0, 1, 1]))
    assert torch.equal(t.data, torch.tensor([[1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0]]))
    assert torch.equal(nn.signed_targets([2], num_classes=3).data, torch.tensor([[-1.0, -1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.signed_targets(torch.tensor([0, 2]))


@pytest.mark.parametrize("kind", ["MSELoss", "L1Loss"])
def test_regression_losses_accept_class_indices_as_signed_targets(kind):
    x = torch.randn(6, 2, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    ours = getattr(nn, kind)()(x, labels).item()
    ref = getattr(torch.nn, kind)()(x, nn.signed_targets(labels, dtype=torch.float64).data).item()
    assert ours == pytest.approx(ref, rel=1e-12)


def test_mae_is_l1_and_bad_arguments_are_refused():
    assert nn.MAELoss is nn.L1Loss
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"target shape \(3, 1\) differs from input shape \(3, 2\)"):
        nn.MSELoss()(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.CrossEntropyLoss()(torch.zeros(2, 2), torch.tensor([0, 5]))


@pytest.mark.parametrize("legacy", [{"size_average": False}, {"reduce": False}, {"size_average": True, "reduce": True}])
@pytest.mark.parametrize("kind", ["BCELoss", "BCEWithLogitsLoss", "SmoothL1Loss", "NLLLoss", "CrossEntropyLoss"])
def test_loss_layers_follow_torchs_legacy_reduction_arguments(kind, legacy):
    # torch's deprecated size_average / reduce decide the reduction (they were accepted and ignored)
    torch.manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.float64)
    if kind in ("NLLLoss", "CrossEntropyLoss"):
        x, target, ours = x.log_softmax(-1) if kind == "NLLLoss" else x, torch.tensor([0, 1, 2, 1]), None
    else:
        x, target = x.sigmoid() if kind == "BCELoss" else x, torch.rand(4, 3, dtype=torch.float64)
        ours = tg.Tensor(target)
    expected = getattr(torch.nn, kind)(**legacy)(x, target)
    got = getattr(nn, kind)(**legacy)(tg.Tensor(x), target if ours is None else ours)
    assert got.shape == expected.shape
    torch.testing.assert_close(got.data, expected, **TOL)
