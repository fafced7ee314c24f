"""Every gradient a VJP rule returns is checked (type, shape, device) and cast to its input's dtype,
as torch's engine does; a rule that is missing or returns something else names the op and input."""

import pytest
import torch

import tapegrad as tg

F64 = torch.float64


def _f32_rule(g, out, x):
    return (2 * g * x).to(torch.float32)  # a cotangent computed in float32


twice_f32 = tg.primitive("test_vjp_checks_twice_f32", lambda x: 2 * x * x / 2, [lambda g, out, x: _f32_rule(g, out, x)])


class TorchTwiceF32(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (2 * g * x).float()


@pytest.mark.parametrize("order", [1, 2])
def test_a_float32_gradient_for_a_float64_input_is_cast_as_torch_casts_it(order):
    x0 = torch.tensor([0.5, -1.5, 2.0], dtype=F64)
    xt = x0.clone().requires_grad_()
    (gt,) = torch.autograd.grad(TorchTwiceF32.apply(xt).sum(), xt, create_graph=order == 2)
    x = tg.tensor(x0.clone(), requires_grad=True)
    with tg.Tape(persistent=True) as outer:
        with tg.Tape() as inner:
            y = twice_f32(x).sum()
        g = inner.gradient(y, x)
        total = g.sum()
    assert g.dtype == gt.dtype == F64
    assert torch.equal(g.data, gt.detach())
    if order == 2:
        (ggt,) = torch.autograd.grad(gt.sum(), xt)
        gg = outer.gradient(total, x)
        assert gg.dtype == ggt.dtype == F64 and torch.allclose(gg.data, ggt)


def test_custom_vjp_float32_cotangent_comes_back_in_the_arguments_dtype():
    @tg.custom_vjp
    def f(x):
        return x * 3.0

    f.defvjp(lambda x: (x * 3.0, None), lambda res, g: ((g * 3.0).to(torch.float32),))
    x = tg.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    with tg.Tape() as tape:
        y = f(x).sum()
    g = tape.gradient(y, x)
    assert g.dtype == F64 and torch.equal(g.data, torch.full((2,), 3.0, dtype=F64))


def test_custom_vjp_backward_returning_a_string_names_the_function_and_argument():
    @tg.custom_vjp
    def f(x):
        return x * 3.0

    f.defvjp(lambda x: (x * 3.0, None), lambda res, g: ("oops",))
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as tape:
        y = f(x).sum()
    with pytest.raises(TypeError, match=r"custom_vjp\(f\).*returned str 'oops'.*argument 0 \(x\)"):
        tape.gradient(y, x)


def test_a_missing_per_input_rule_for_an_input_that_requires_grad_is_a_clear_error():
    scale = tg.primitive("test_vjp_checks_scale", lambda x, c: x * c, [lambda g, out, x, c: g * c, None])
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([3.0, 4.0], requires_grad=True)
    with tg.Tape() as tape:
        y = scale(x, c).sum()
    with pytest.raises(tg.TapeError, match=r"test_vjp_checks_scale has no VJP rule for input 1"):
        tape.gradient(y, [x, c])


def test_only_the_input_without_a_rule_is_refused():
    scale = tg.primitive("test_vjp_checks_scale2", lambda x, c: x * c, [lambda g, out, x, c: g * c, None])
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    c = tg.tensor([3.0, 4.0])  # needs no gradient: its missing rule is never asked for
    with tg.Tape() as tape:
        y = scale(x, c).sum()
    assert torch.equal(tape.gradient(y, x).data, c.data)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (lambda g, out, x: ("a string",), r"returned str 'a string' as the gradient of input 0 \(\(2,\) float32"),
        (lambda g, out, x: (3.0,), r"returned float 3.0 as the gradient of input 0"),
        (lambda g, out, x: (g.reshape(2, 1),), r"returned a gradient \(2, 1\) float32 cpu for input 0 \(2,\)"),
        (lambda g, out, x: g, r"returned Tensor .*must return a tuple with one gradient \(or None\) for each of its 1"),
        (lambda g, out, x: (g, g), r"returned 2 gradients; it must return a tuple .* 1 inputs"),
    ],
    ids=["str", "float", "shape", "not a tuple", "too many"],
)
def test_a_rule_returning_something_else_names_the_op_the_input_and_what_came_back(rule, message):
    op = tg.primitive("test_vjp_checks_bad", lambda x: x * 2, rule)
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.Tape() as tape:  # first order: the rule gets raw torch tensors
        y = op(x).sum()
    with pytest.raises(tg.TapeError, match=r"VJP of test_vjp_checks_bad " + message):
        tape.gradient(y, x)
    with tg.Tape(), tg.Tape() as tape:  # recorded by the outer tape: the rule gets tg.Tensors
        y = op(x).sum()
        with pytest.raises(tg.TapeError, match=r"VJP of test_vjp_checks_bad " + message):
            tape.gradient(y, x)


def test_a_traced_step_casts_the_gradient_too():
    x = tg.tensor([0.5, -1.5, 2.0], dtype=F64, requires_grad=True)
    step = tg.trace(lambda x: twice_f32(x).sum())
    for _ in range(2):  # recorded once, then replayed from the generated code
        x.grad = None
        step(x)
        assert x.grad.dtype == F64 and torch.equal(x.grad.data, 2 * x.data)
