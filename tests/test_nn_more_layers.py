"""The activations, parameter containers, Unflatten and nn.init functions added for ports, against
torch.nn in float64 (values away from each activation's kinks)."""

from __future__ import annotations

import pytest
import torch
from parity import assert_parity, ported, rand

import nn

TNN = torch.nn

ACTIVATIONS = [
    ("SiLU", {}), ("Mish", {}), ("Hardtanh", {}), ("Hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("ReLU6", {}),
    ("ELU", {}), ("ELU", {"alpha": 0.5}), ("CELU", {"alpha": 2.0}), ("SELU", {}), ("PReLU", {}),
    ("PReLU", {"num_parameters": 3, "init": 0.1}), ("Hardsigmoid", {}), ("Hardswish", {}), ("LogSigmoid", {}),
    ("Softsign", {}),
]  # fmt: skip


def away_from_kinks(*shape, seed=0):
    x = rand(*shape, seed=seed) * 3
    kinks = torch.tensor([-3.0, -1.0, -0.5, 0.0, 1.0, 2.0, 3.0, 6.0], dtype=x.dtype)
    near = (x.unsqueeze(-1) - kinks).abs().min(-1).values < 0.05
    return torch.where(near, x + 0.1, x)


@pytest.mark.parametrize("name, options", ACTIVATIONS, ids=lambda v: str(v))
def test_activations_match_torch(name, options):
    ref = getattr(TNN, name)(**options)
    ours = ported(getattr(nn, name)(**options), ref)
    assert repr(ours) == repr(ref)
    # torch's hardsigmoid/hardswish backward kernels use 1/6 rounded to float32, even in float64
    tol = dict(rtol=1e-7, atol=1e-8) if name.startswith("Hards") else None
    assert_parity(ours, ref, away_from_kinks(2, 3, 4), tol=tol)
    assert_parity(ours, ref, away_from_kinks(5, 3, seed=1) * 4, tol=tol)


def test_parameter_list_and_dict_are_registered_like_torchs():
    values = [rand(2, 3), rand(4, seed=1)]
    ours = nn.ParameterList(values)
    ref = TNN.ParameterList([TNN.Parameter(v.clone()) for v in values])
    ours.append(rand(1, seed=2))
    ref.append(TNN.Parameter(rand(1, seed=2)))
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["0", "1", "2"]
    assert repr(ours) == repr(ref) and len(ours) == 3 and isinstance(ours[0], nn.Parameter)
    assert [p.shape for p in ours] == [p.shape for p in ref] and ours[-1] is ours[2]
    ref.load_state_dict(ours.state_dict())
    table = nn.ParameterDict({"scale": rand(3), "shift": rand(3, seed=1)})
    ref_table = TNN.ParameterDict({"scale": TNN.Parameter(rand(3)), "shift": TNN.Parameter(rand(3, seed=1))})
    assert list(table.state_dict()) == list(ref_table.state_dict()) and repr(table) == repr(ref_table)
    assert "scale" in table and list(table.keys()) == ["scale", "shift"]
    table.pop("scale")
    assert list(table.state_dict()) == ["shift"] and len(table) == 1


def test_unflatten_matches_torch():
    assert repr(nn.Unflatten(1, (2, 3))) == repr(TNN.Unflatten(1, (2, 3)))
    assert_parity(nn.Unflatten(1, (2, 3)), TNN.Unflatten(1, (2, 3)), rand(4, 6))


INITS = [
    ("trunc_normal_", (5, 4), {"mean": 0.1, "std": 0.5, "a": -0.3, "b": 0.8}),
    ("trunc_normal_", (30, 4), {"mean": 0.0, "std": 1.0, "a": 1.5, "b": 3.0}),
    ("orthogonal_", (5, 3), {"gain": 2.0}),
    ("orthogonal_", (3, 2, 2), {}),
    ("sparse_", (6, 3), {"sparsity": 0.5}),
    ("eye_", (3, 5), {}),
    ("dirac_", (4, 2, 3, 3), {"groups": 2}),
    ("dirac_", (2, 2, 3), {}),
]


@pytest.mark.parametrize("name, shape, options", INITS, ids=lambda v: str(v))
def test_init_functions_give_torchs_values_for_the_same_seed(name, shape, options):
    gen = {} if name in ("eye_", "dirac_") else {"generator": torch.Generator().manual_seed(0)}
    ours = nn.Parameter(torch.empty(shape))
    ref = torch.empty(shape)
    torch.manual_seed(1)  # sparse_ draws its zero positions from the global RNG, as torch does
    assert getattr(nn.init, name)(ours, **options, **gen) is ours
    torch.manual_seed(1)
    gen = {} if name in ("eye_", "dirac_") else {"generator": torch.Generator().manual_seed(0)}
    getattr(TNN.init, name)(ref, **options, **gen)
    torch.testing.assert_close(ours.data, ref)
    assert not ours.grad


def test_init_rejects_unsupported_shapes():
    with pytest.raises(ValueError, match="2 dimensions"):
        nn.init.eye_(torch.empty(2, 2, 2))
    with pytest.raises(ValueError, match="3, 4, or 5"):
        nn.init.dirac_(torch.empty(2, 2))
