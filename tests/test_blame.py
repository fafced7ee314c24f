"""Per-op blame: a failing `tg.gradcheck` names the primitive whose VJP is wrong, and where it ran."""

from __future__ import annotations

import pytest
import torch
from test_inplace import VALID

import nn
import tapegrad as tg
from tapegrad.transforms.blame import blame, check_record

F64 = torch.float64

# A correct custom primitive and one whose VJP is off by a factor 1.5 (the bug to find).
cube = tg.primitive("test_blame_cube", lambda x: x**3, [lambda g, out, x: g * 3 * x * x])
bad_sin = tg.primitive("test_blame_bad_sin", torch.sin, [lambda g, out, x: g * x.cos() * 1.5])
# Two inputs; the rule for the second one forgets a sign.
bad_sub = tg.primitive("test_blame_bad_sub", lambda x, y: x - y, [lambda g, out, x, y: g, lambda g, out, x, y: g])


def chain(x):
    h = (x * 2).exp()
    h = cube(h.tanh())
    h = h * x + 1
    h = bad_sin(h)
    return (h.sigmoid() * x).sum()


BAD_LINE = f"test_blame.py:{chain.__code__.co_firstlineno + 4} in chain"  # the line that calls bad_sin


def inputs(*shape):
    return [torch.linspace(-0.4, 0.5, int(torch.tensor(shape).prod())).reshape(shape).to(F64)]


def blame_part(err: tg.GradcheckError) -> str:
    msg = str(err)
    assert msg.startswith("gradcheck: gradient of output element"), msg
    return msg[msg.index("blame:") :]


def test_gradcheck_blames_the_primitive_with_the_wrong_vjp_and_not_the_others():
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(chain, inputs(3))
    part = blame_part(info.value)
    assert part.startswith("blame: primitive 'test_blame_bad_sin', recorded at "), part
    assert BAD_LINE in part and "on inputs (3,) float64 cpu" in part and "for input 0" in part
    for innocent in ("test_blame_cube", "'exp'", "'tanh'", "'mul'", "'add'", "'sigmoid'", "'sum'"):
        assert innocent not in part
    assert "VJP - numerical Jacobian:" in part  # a 3x3 difference is small enough to print


def test_the_jacobian_difference_is_the_factor_of_the_bug():
    with tg.Tape(persistent=True) as tape:
        x = tg.Tensor(inputs(2)[0])
        tape.watch(x)
        chain(x)
    (record,) = [r for r in tape.records if r.primitive is bad_sin]
    found = check_record(record)
    assert found is not None and found.name == "test_blame_bad_sin" and found.input_index == 0
    # the VJP's Jacobian is 1.5 times the true diagonal cos(h): the difference is 0.5 cos(h)
    expected = torch.diag(0.5 * record.inputs[0].data.cos())
    assert torch.allclose(found.analytical - found.numerical, expected, atol=1e-6)
    assert all(check_record(r) is None for r in tape.records if r is not record)


def test_blame_names_the_input_and_the_module_scope():
    class Residual(nn.Module):
        def forward(self, x):
            return bad_sub(x.exp(), x * x)

    model = nn.Sequential(nn.Tanh(), Residual())
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(lambda x: model(x).sum(), inputs(2, 2))
    part = blame_part(info.value)
    assert part.startswith("blame: primitive 'test_blame_bad_sub' in 1 (Residual), recorded at "), part
    assert " in forward on inputs (2, 2) float64 cpu, (2, 2) float64 cpu" in part and "for input 1:" in part


def test_large_records_are_checked_by_random_projections():
    x = torch.randn(70, 70, dtype=F64, generator=torch.Generator().manual_seed(1)) * 0.1
    found = blame(lambda a: bad_sin(a * 2).sum(), [tg.Tensor(x)])
    assert found is not None and found.name == "test_blame_bad_sin"
    assert "random projections" in str(found)


def test_a_composition_error_blames_no_primitive():
    def leaky(x):
        return x * tg.Tensor(x.data.exp())  # .data escapes the tape: d/dx misses a term

    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(leaky, inputs(3))
    assert blame_part(info.value).startswith("blame: every primitive's VJP agrees with finite differences")


def test_correct_functions_pass_gradcheck():
    assert tg.gradcheck(lambda x: cube(x.tanh()).sum() * 2, inputs(2, 3))


@pytest.mark.parametrize("name", sorted(VALID))
def test_no_builtin_primitive_is_blamed_at_valid_inputs(name):
    args, params = VALID[name]()
    prim = tg.registered_primitives()[name]
    with tg.Tape() as tape:
        prim(*args, **params)
    (record,) = tape.records
    found = check_record(record)
    assert found is None, str(found)
