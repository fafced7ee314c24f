"""Forward mode (tg.jvp, tg.jacfwd, tg.hvp) against torch.func, over the whole registry and on an MLP.

Forward mode has no rules of its own (it transposes the VJP rules), so one registry-driven test
checks every built-in primitive, the way tests/test_primitives.py checks their VJPs.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_specs import SPECS
from strategies import F64, examples, floats, seeds, small_shapes, upstream
from test_primitives import BUILTIN, PRIMITIVES, caller, torch_caller

import nn
import tapegrad as tg

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func
SETTINGS = settings(
    max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
TOL = {"rtol": 1e-10, "atol": 1e-10}


def close(ours, ref, what: str) -> None:
    """Our tg.Tensor equals torch's tensor to 1e-10 (float32 outputs, as of a cast, to float32 precision)."""
    assert isinstance(ours, tg.Tensor), f"{what}: got {type(ours).__name__}"
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, f"{what}: {ours.shape} {ours.dtype} vs {ref.shape}"
    tol = TOL if ref.dtype == F64 else {"rtol": 1e-6, "atol": 1e-6}
    torch.testing.assert_close(ours.data, ref.detach(), **tol, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("name", BUILTIN)
@SETTINGS
@given(data=st.data())
def test_jvp_and_jacfwd_match_torch_func_for_every_primitive(name, data):
    prim = PRIMITIVES[name]
    case = data.draw(SPECS[name], label="case")
    seed = data.draw(seeds, label="seed")
    raw = [case.args[i] for i in case.differentiable()]
    f, ref_f = caller(prim, case), torch_caller(prim, case)
    tangents = [upstream(x.shape, seed + i) for i, x in enumerate(raw)]

    out, tangent_out = tg.jvp(f, tuple(tg.Tensor(x) for x in raw), tuple(tg.Tensor(t) for t in tangents))
    ref_out, ref_tangent = torch.func.jvp(ref_f, tuple(raw), tuple(tangents))
    close(out, ref_out, f"{name}: jvp output")
    close(tangent_out, ref_tangent, f"{name}: jvp tangent")

    argnums = tuple(range(len(raw)))
    jacs = tg.jacfwd(f, argnums=argnums)(*(tg.Tensor(x) for x in raw))
    # torch.func's vmap cannot batch over an empty input: its Jacobians are empty anyway, the others still count
    full = tuple(i for i, x in enumerate(raw) if x.numel())
    ref_jacs = [torch.zeros((*ref_out.shape, *x.shape), dtype=ref_out.dtype) for x in raw]
    if full:
        for i, jac in zip(full, torch.func.jacfwd(ref_f, argnums=full)(*raw)):
            ref_jacs[i] = jac
    assert isinstance(jacs, tuple) and len(jacs) == len(raw)
    for i, (ours, ref) in enumerate(zip(jacs, ref_jacs)):
        close(ours, ref, f"{name}: jacfwd, input {i}")


def test_every_builtin_primitive_is_covered():
    assert set(BUILTIN) <= SPECS.keys() and len(BUILTIN) >= 35


# --- an MLP, tuples, aux, composition --------------------------------------------------------------
def mlp_params(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sizes = [(3, 8), (8,), (8, 8), (8,), (8, 2), (2,)]
    return [torch.randn(s, generator=gen, dtype=F64) * 0.7 for s in sizes]


def mlp(x, w1, b1, w2, b2, w3, b3):
    """The same code runs on tg.Tensors and on torch tensors."""
    h = (x @ w1 + b1).tanh()
    h = (h @ w2 + b2).sigmoid()
    return h @ w3 + b3


@settings(max_examples=examples(10), deadline=None)
@given(x=floats((4, 3)), seed=seeds)
def test_jvp_jacfwd_and_hvp_of_an_mlp_match_torch_func(x, seed):
    params = mlp_params(seed % 1000)
    primals = (x, *params)
    tangents = tuple(upstream(p.shape, seed + i) for i, p in enumerate(primals))
    tg_primals = tuple(tg.Tensor(p) for p in primals)

    out, jv = tg.jvp(mlp, tg_primals, tuple(tg.Tensor(t) for t in tangents))
    ref_out, ref_jv = torch.func.jvp(mlp, primals, tangents)
    close(out, ref_out, "mlp output")
    close(jv, ref_jv, "mlp jvp")

    jacs = tg.jacfwd(mlp, argnums=(0, 1, 2))(*tg_primals)
    ref_jacs = torch.func.jacfwd(mlp, argnums=(0, 1, 2))(*primals)
    for i, (ours, ref) in enumerate(zip(jacs, ref_jacs)):
        close(ours, ref, f"mlp jacfwd {i}")
    close(tg.jacfwd(mlp)(*tg_primals), ref_jacs[0], "mlp jacfwd argnums=0")

    def loss(*ps):
        return (mlp(*ps) ** 2).mean()

    value, hv = tg.hvp(loss, tg_primals, tuple(tg.Tensor(t) for t in tangents))
    ref_value, ref_hv = torch.autograd.functional.hvp(loss, primals, tangents)
    _, ref_hv_func = torch.func.jvp(torch.func.grad(loss, argnums=tuple(range(7))), primals, tangents)
    close(value, ref_value, "hvp value")
    for i, (ours, ref, ref2) in enumerate(zip(hv, ref_hv, ref_hv_func)):
        close(ours, ref, f"hvp {i}")
        close(ours, ref2, f"hvp {i} (torch.func)")


def test_hvp_of_one_tensor_returns_one_tensor():
    x = torch.tensor([0.3, -1.2, 2.0], dtype=F64)
    v = torch.tensor([1.0, 0.5, -2.0], dtype=F64)
    value, hv = tg.hvp(lambda a: (a.sin() * a).sum(), tg.Tensor(x), tg.Tensor(v))
    ref_value, ref_hv = torch.autograd.functional.hvp(lambda a: (a.sin() * a).sum(), x, v)
    close(value, ref_value, "value")
    close(hv, ref_hv, "hvp")


def test_tuple_outputs_and_has_aux():
    def f(x, y):
        return (x * y).sin(), (x.exp() * 2).sum()

    x, y = torch.tensor([0.1, 0.7], dtype=F64), torch.tensor([1.5, -0.4], dtype=F64)
    tx, ty = torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([-1.0, 0.5], dtype=F64)
    outs, tangents = tg.jvp(f, (tg.Tensor(x), tg.Tensor(y)), (tg.Tensor(tx), tg.Tensor(ty)))
    ref_outs, ref_tangents = torch.func.jvp(f, (x, y), (tx, ty))
    for i in range(2):
        close(outs[i], ref_outs[i], f"output {i}")
        close(tangents[i], ref_tangents[i], f"tangent {i}")
    jac = tg.jacfwd(f, argnums=(0, 1))(tg.Tensor(x), tg.Tensor(y))
    ref = torch.func.jacfwd(f, argnums=(0, 1))(x, y)
    for k in range(2):
        for i in range(2):
            close(jac[k][i], ref[k][i], f"jacfwd output {k} input {i}")

    def with_aux(x):
        return x.tanh(), {"norm": x.sum()}

    out, tangent, aux = tg.jvp(with_aux, (tg.Tensor(x),), (tg.Tensor(tx),), has_aux=True)
    ref_out, ref_tangent, ref_aux = torch.func.jvp(with_aux, (x,), (tx,), has_aux=True)
    close(tangent, ref_tangent, "aux jvp")
    assert float(aux["norm"]) == pytest.approx(float(ref_aux["norm"]))
    jac, aux = tg.jacfwd(with_aux, has_aux=True)(tg.Tensor(x))
    close(jac, torch.func.jacfwd(with_aux, has_aux=True)(x)[0], "aux jacfwd")


def test_outputs_that_do_not_depend_on_an_input_get_zero_tangents():
    x, y = tg.tensor([1.0, 2.0], dtype=F64), tg.tensor([3.0], dtype=F64)
    out, tangent = tg.jvp(lambda a, b: a * 2, (x, y), (tg.tensor([1.0, 1.0], dtype=F64), tg.tensor([5.0], dtype=F64)))
    assert torch.equal(tangent.data, torch.tensor([2.0, 2.0], dtype=F64))
    _, tangent = tg.jvp(lambda a: tg.tensor([7.0], dtype=F64), (x,), (x,))
    assert torch.equal(tangent.data, torch.zeros(1, dtype=F64))
    _, tangent = tg.jvp(lambda a: a, (x,), (tg.tensor([4.0, 5.0], dtype=F64),))
    assert torch.equal(tangent.data, torch.tensor([4.0, 5.0], dtype=F64))
    jy = tg.jacfwd(lambda a, b: a * 2, argnums=1)(x, y)
    assert jy.shape == (2, 1) and torch.equal(jy.data, torch.zeros(2, 1, dtype=F64))


def test_jvp_of_a_user_primitive_needs_no_forward_rule():
    cube = tg.primitive("cube_for_jvp_test", lambda x: x**3, lambda g, out, x: (g * 3 * x * x,))
    x, t = torch.tensor([0.5, -2.0], dtype=F64), torch.tensor([1.0, 3.0], dtype=F64)
    _, tangent = tg.jvp(cube, (tg.Tensor(x),), (tg.Tensor(t),))
    torch.testing.assert_close(tangent.data, 3 * x**2 * t, **TOL)


def test_jvp_composes_with_an_outer_tape_and_with_itself():
    x = torch.tensor([0.4, -0.9, 1.3], dtype=F64)
    t = torch.tensor([1.0, -2.0, 0.5], dtype=F64)

    def f(a):
        return (a.sin() * a.exp()).sum()

    # the gradient of the jvp with respect to the primal: a Hessian-vector product
    xs = tg.Tensor(x.clone(), requires_grad=True)
    with tg.Tape() as tape:
        _, jv = tg.jvp(f, (xs,), (tg.Tensor(t),))
    ours = tape.gradient(jv, xs)
    ref = torch.autograd.functional.hvp(lambda a: (a.sin() * a.exp()).sum(), x, t)[1]
    close(ours, ref, "grad of jvp")

    # forward over forward: t^T H t
    def directional(a):
        return tg.jvp(f, (a,), (tg.Tensor(t),))[1]

    _, second = tg.jvp(directional, (tg.Tensor(x),), (tg.Tensor(t),))
    torch.testing.assert_close(second.data, (ref * t).sum(), **TOL)


def test_forward_mode_works_under_no_grad():
    x = tg.tensor([0.2, 1.0], dtype=F64)
    t = tg.tensor([1.0, -1.0], dtype=F64)
    with tg.no_grad():
        _, tangent = tg.jvp(lambda a: a.exp(), (x,), (t,))
        jac = tg.jacfwd(lambda a: a.exp())(x)
        _, hv = tg.hvp(lambda a: (a**3).sum(), x, t)
    assert torch.equal(tangent.data, x.data.exp() * t.data)
    assert torch.equal(jac.data, torch.diag(x.data.exp()))
    torch.testing.assert_close(hv.data, 6 * x.data * t.data, **TOL)


def test_jvp_through_nn_modules():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    x = torch.randn(4, 3)
    t = torch.randn(4, 3)
    _, ours = tg.jvp(model, (tg.Tensor(x),), (tg.Tensor(t),))
    w1, b1, w2, b2 = (p.data for p in model.parameters())
    _, ref = torch.func.jvp(lambda a: torch.tanh(a @ w1.T + b1) @ w2.T + b2, (x,), (t,))
    torch.testing.assert_close(ours.data, ref)


# --- bad input ---------------------------------------------------------------------------------------
def mlp_head(x):
    return x.tanh().sum()


def test_tangent_shape_mismatch_names_function_argument_and_shapes():
    x = tg.Tensor(torch.zeros(2, 3, dtype=F64))
    expected = r"jvp\(mlp_head\): tangents\[0\] has shape \(3,\) but primals\[0\] has shape \(2, 3\)"
    with pytest.raises(tg.ShapeError, match=expected):
        tg.jvp(mlp_head, (x,), (tg.Tensor(torch.zeros(3, dtype=F64)),))
    with pytest.raises(tg.ShapeError, match=r"hvp\(mlp_head\): tangents\[0\] has shape \(3,\)"):
        tg.hvp(mlp_head, (x,), (tg.Tensor(torch.zeros(3, dtype=F64)),))


def test_tangent_dtype_mismatch_names_both_dtypes_and_shapes():
    x = tg.Tensor(torch.zeros(2, dtype=F64))
    expected = (
        r"jvp\(mlp_head\): tangents\[0\] has dtype torch.float32 but primals\[0\] has dtype torch.float64 "
        r"\(shapes \(2,\) and \(2,\)\)"
    )
    with pytest.raises(TypeError, match=expected):
        tg.jvp(mlp_head, (x,), (tg.Tensor(torch.zeros(2)),))


def test_wrong_number_of_tangents_and_non_tensor_outputs():
    x = tg.Tensor(torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match=r"jvp\(mlp_head\): got 2 tangents for 1 primals"):
        tg.jvp(mlp_head, (x,), (x, x))
    with pytest.raises(TypeError, match=r"<lambda> must return a tg.Tensor or a tuple of them"):
        tg.jvp(lambda a: 3.0, (x,), (x,))
    with pytest.raises(TypeError, match=r"primals\[0\] is a torch.int64 tensor"):
        tg.jvp(mlp_head, (tg.tensor([1, 2]),), (tg.tensor([1, 2]),))


@given(shape=small_shapes(min_dims=1), data=st.data())
@settings(max_examples=examples(20), deadline=None)
def test_jacfwd_equals_reverse_jacobian(shape, data):
    x = data.draw(floats(shape))

    def f(a):
        return (a.sin() * a.sum()).softmax(-1)

    close(tg.jacfwd(f)(tg.Tensor(x)), tg.jacobian(f, tg.Tensor(x)).data, "jacfwd vs jacobian")
