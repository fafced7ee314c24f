"""BatchNorm1d/2d, GroupNorm and RMSNorm against torch.nn in float64: outputs, gradients, running
statistics, state_dict keys (with buffers, strict both ways) and the fused batch_norm primitive."""

from __future__ import annotations

import pytest
import torch
from parity import TOL, assert_parity, ported, rand

import nn
import tapegrad as tg

TNN = torch.nn

BATCH_NORMS = {
    "1d": (nn.BatchNorm1d, TNN.BatchNorm1d, [(5, 3), (4, 3, 2)]),
    "2d": (nn.BatchNorm2d, TNN.BatchNorm2d, [(2, 3, 4, 3)]),
}
OPTIONS = [
    {},
    {"momentum": None},
    {"affine": False},
    {"track_running_stats": False},
    {"momentum": 0.3, "eps": 1e-3},
    {"bias": False},
]


@pytest.mark.parametrize("kind", sorted(BATCH_NORMS))
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_batch_norm_matches_torch_in_training_and_eval(kind, options):
    ours_cls, ref_cls, shapes = BATCH_NORMS[kind]
    ref = ref_cls(3, **options)
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(0.5, 1.5)
    ours = ported(ours_cls(3, **options), ref)
    assert repr(ours) == repr(ref)
    seed = 0
    for shape in shapes:
        for training in (True, True, False):
            ours.train(training)
            ref.train(training)
            seed += 1
            assert_parity(ours, ref, rand(*shape, seed=seed) * 2 + 1, seed=seed)
            for (name, a), (_, b) in zip(ours.named_buffers(), ref.named_buffers()):
                torch.testing.assert_close(a, b, **TOL, msg=name)
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]


def test_batch_norm_state_dict_has_torchs_buffers_and_loads_strictly():
    ref = TNN.Sequential(TNN.Conv2d(1, 2, 3), TNN.BatchNorm2d(2), TNN.ReLU())
    ref.train()
    ref(torch.randn(4, 1, 5, 5))  # running statistics move away from their start
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert ours[1].num_batches_tracked.item() == 1 and ours[1].num_batches_tracked.dtype == torch.long
    torch.testing.assert_close(ours[1].running_var, ref[1].running_var)
    ours.eval()
    ref.eval()
    x = torch.randn(2, 1, 5, 5)
    torch.testing.assert_close(ours(x).data, ref(x).detach(), rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "1.num_batches_tracked"'):
        ours.load_state_dict({k: v for k, v in ref.state_dict().items() if "num_batches" not in k})


def test_batch_norm_rejects_wrong_inputs():
    with pytest.raises(tg.ShapeError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(tg.ShapeError, match="expected 3 channels"):
        nn.BatchNorm2d(3)(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(torch.randn(1, 3))


def test_batch_norm_is_one_primitive_and_has_second_order_gradients():
    bn = nn.BatchNorm2d(2).double()
    x = tg.Tensor(rand(3, 2, 2, 2), requires_grad=True)
    with tg.Tape() as tape:
        y = bn(x)
    assert [r.primitive.name for r in tape] == ["batch_norm"]
    for training in (True, False):
        bn.train(training)

        def f(x, w, b, training=training):
            return tg.batch_norm(x, bn.running_mean, bn.running_var, w, b, training=training)

        args = [rand(3, 2, 2, 2, seed=1), rand(2, seed=2).abs() + 0.5, rand(2, seed=3)]
        assert tg.gradcheck(f, args)
        assert tg.gradcheck(lambda *a: tg.grad(lambda x: (f(x, *a[1:]) ** 2).sum())(a[0]), args)
    assert y.shape == (3, 2, 2, 2)


@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.GroupNorm(2, 4),
        lambda lib: lib.GroupNorm(1, 4, eps=1e-3, affine=False),
        lambda lib: lib.GroupNorm(4, 4),
    ],
)
def test_group_norm_matches_torch(make):
    ref = make(TNN)
    if ref.affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-0.5, 0.5)
    ours = ported(make(nn), ref)
    assert repr(ours) == repr(ref)
    assert_parity(ours, ref, rand(2, 4, 3, 2))
    assert_parity(ours, ref, rand(3, 4, 5, seed=1))


@pytest.mark.parametrize(
    "make",
    [
        lambda lib: lib.RMSNorm(4),
        lambda lib: lib.RMSNorm([3, 4], eps=1e-4),
        lambda lib: lib.RMSNorm(4, elementwise_affine=False),
    ],
)
def test_rms_norm_matches_torch(make):
    ref = make(TNN)
    if ref.weight is not None:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
    ours = ported(make(nn), ref)
    assert repr(ours) == repr(ref)
    assert_parity(ours, ref, rand(2, 3, 4))
