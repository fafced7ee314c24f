"""nn.init against torch.nn.init: equal seeds give bit-equal tensors; gains equal torch's."""

import math

import pytest
import torch

import nn

SHAPES = [(5, 3), (25, 2), (4, 6, 2)]


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None),
])  # fmt: skip
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert nn.init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("xavier_uniform_", {}),
        ("xavier_uniform_", {"gain": 6.0}),
        ("xavier_normal_", {"gain": 6.0}),
        ("kaiming_uniform_", {}),
        ("kaiming_uniform_", {"a": math.sqrt(5)}),
        ("kaiming_normal_", {"nonlinearity": "relu"}),
        ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}),
        ("uniform_", {"a": -0.5, "b": 2.0}),
        ("normal_", {"mean": 1.0, "std": 0.1}),
    ],
)
def test_initialisers_match_torch_draw_for_draw(shape, name, kwargs):
    p = nn.Parameter(torch.empty(shape, dtype=torch.float64))
    ref = torch.empty(shape, dtype=torch.float64)
    torch.manual_seed(3)
    assert getattr(nn.init, name)(p, **kwargs) is p
    torch.manual_seed(3)
    getattr(torch.nn.init, name)(ref, **kwargs)
    assert torch.equal(p.data, ref)


def test_generator_and_plain_fills():
    a, b = torch.empty(4, 4), torch.empty(4, 4)
    nn.init.xavier_uniform_(a, generator=torch.Generator().manual_seed(1))
    nn.init.xavier_uniform_(b, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    p = nn.Parameter(torch.randn(3, 2))
    assert torch.equal(nn.init.zeros_(p).data, torch.zeros(3, 2))
    assert torch.equal(nn.init.ones_(p).data, torch.ones(3, 2))
    assert torch.equal(nn.init.constant_(p, 0.25).data, torch.full((3, 2), 0.25))


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_normal_(torch.empty(3))
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_normal_(torch.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.init.calculate_gain("swish")
