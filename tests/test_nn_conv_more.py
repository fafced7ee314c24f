"""Conv1d, ConvTranspose2d and Upsample against torch.nn in float64: outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from parity import TOL, assert_parity, ported, rand

import nn
import tapegrad as tg

TNN = torch.nn

CONVS = [
    ("Conv1d", (3, 4, 3), {}, (2, 3, 7)),
    ("Conv1d", (4, 6, 2), dict(stride=2, padding=1, dilation=2, groups=2, bias=False), (2, 4, 9)),
    ("Conv1d", (3, 2, 3), dict(padding="same"), (3, 6)),
    ("ConvTranspose2d", (3, 4, 3), {}, (2, 3, 4, 5)),
    ("ConvTranspose2d", (4, 2, (3, 2)), dict(stride=2, padding=1, output_padding=1, groups=2), (1, 4, 3, 3)),
    ("ConvTranspose2d", (2, 3, 2), dict(stride=(2, 1), dilation=2, bias=False), (2, 4, 4)),
]


@pytest.mark.parametrize("name, args, options, shape", CONVS, ids=str)
def test_convolutions_match_torch(name, args, options, shape):
    ref = getattr(TNN, name)(*args, **options)
    ours = ported(getattr(nn, name)(*args, **options), ref)
    assert repr(ours) == repr(ref)
    assert_parity(ours, ref, rand(*shape))


def test_conv_transpose_output_size_and_same_seed_weights():
    torch.manual_seed(0)
    ours = nn.ConvTranspose2d(2, 3, 3, stride=2)
    torch.manual_seed(0)
    ref = TNN.ConvTranspose2d(2, 3, 3, stride=2)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))
    x = torch.randn(1, 2, 3, 3)
    out = ours(x, output_size=(8, 8))
    torch.testing.assert_close(out.data, ref(x, output_size=(8, 8)).detach())


UPSAMPLES = [
    (dict(scale_factor=2), (2, 3, 4, 3)),
    (dict(size=(5, 7)), (1, 2, 3, 4)),
    (dict(scale_factor=1.5, mode="bilinear"), (1, 2, 4, 3)),
    (dict(size=(6, 5), mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    (dict(scale_factor=3, mode="linear"), (2, 2, 4)),
    (dict(size=7, mode="nearest"), (2, 2, 3)),
    (dict(scale_factor=(2, 0.5), mode="bilinear"), (1, 1, 3, 4)),
]


@pytest.mark.parametrize("options, shape", UPSAMPLES, ids=str)
def test_upsample_matches_torch(options, shape):
    ref, ours = TNN.Upsample(**options), nn.Upsample(**options)
    assert repr(ours) == repr(ref)
    assert_parity(ours, ref, rand(*shape))


def test_upsampling_aliases_and_errors():
    x = rand(1, 2, 3, 3)
    for name in ("UpsamplingNearest2d", "UpsamplingBilinear2d"):
        torch.testing.assert_close(
            getattr(nn, name)(scale_factor=2)(x).data, getattr(TNN, name)(scale_factor=2)(x), **TOL
        )
    with pytest.raises(ValueError, match="either size or scale_factor"):
        nn.Upsample()
    with pytest.raises(tg.ShapeError, match="linear"):
        nn.Upsample(scale_factor=2, mode="linear")(x)
    with pytest.raises(tg.ShapeError, match="expects input"):
        nn.Conv1d(3, 2, 1)(rand(2, 4, 5))
