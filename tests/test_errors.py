"""Every error a user can cause names the op, the operands, the module scope and the user's line.

The bad-input suite at the end draws invalid shape combinations for every built-in primitive in
the registry; a new primitive fails `test_every_builtin_primitive_has_a_bad_input_spec` until it
gets a spec here or is listed as having no invalid shapes.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nn
import tapegrad as tg
from tapegrad.engine.errors import IndexShapeError, ShapeError, TapeError

NN_VIZ = ("tapegrad.nn.", "tapegrad.viz.")  # nn's own primitives (mse_loss) are not the core's

F64 = torch.float64


def site(offset: int = 1) -> str:
    """'test_errors.py:N in fn' for the line ``offset`` lines below the caller's line."""
    frame = sys._getframe(1)
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno + offset} in {frame.f_code.co_name}"


def leaf(*shape: int, dtype: torch.dtype = F64, device: str = "cpu") -> tg.Tensor:
    """A tensor that requires grad, with values in [0.5, 1.5) (valid for log, sqrt, pow)."""
    data = torch.rand(shape, dtype=dtype) + 0.5 if device == "cpu" else torch.empty(shape, dtype=dtype, device=device)
    return tg.Tensor(data, requires_grad=True)


class Linear:
    """Stands in for a module, so that a plain `tg.scope` reads "2 (Linear)"."""


# --- shapes, dtypes and devices in the forward pass -------------------------------------------
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow"])
def test_binary_op_with_incompatible_shapes_names_op_shapes_scope_and_line(op):
    x, y = leaf(2, 3), leaf(4, 3)
    with tg.scope("2", module=Linear()):
        where = site(2)
        with pytest.raises(ShapeError) as info:
            getattr(tg, op)(x, y)
    msg = str(info.value)
    assert msg.startswith(f"{op}: ")
    assert "(2, 3) float64 cpu" in msg and "(4, 3) float64 cpu" in msg and "do not broadcast" in msg
    assert " in 2 (Linear)" in msg and where in msg


def test_operator_syntax_reports_the_users_line():
    x, y = leaf(3), leaf(2)
    where = site(2)
    with pytest.raises(ShapeError) as info:
        x * y
    assert str(info.value).startswith("mul: ") and where in str(info.value)


def test_matmul_with_incompatible_shapes():
    x, y = leaf(2, 3), leaf(4, 5)
    where = site(2)
    with pytest.raises(ShapeError) as info:
        x @ y
    msg = str(info.value)
    assert msg.startswith("matmul: ") and "(2, 3) float64 cpu" in msg and "(4, 5) float64 cpu" in msg
    assert where in msg


def test_linear_with_incompatible_weight_and_bias():
    x, w, b = leaf(2, 3), leaf(4, 3), leaf(5)
    with tg.scope("encoder"):
        with pytest.raises(ShapeError) as info:
            tg.linear(x, w, b)
    msg = str(info.value)
    assert msg.startswith("linear: ") and "(2, 3)" in msg and "(4, 3)" in msg and "(5,)" in msg
    assert " in encoder," in msg and "test_errors.py:" in msg


def test_shape_error_inside_an_nn_model_names_the_module_scope():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ShapeError) as info:
        model(tg.Tensor(torch.randn(6, 3)))
    msg = str(info.value)
    assert "2 (Linear) expects" in msg and "(6, 4)" in msg and "test_errors.py:" in msg


def test_dtype_mismatch_inside_an_nn_model_names_the_module_scope():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, dtype=F64))
    where = site(2)
    with pytest.raises(ShapeError) as info:
        model(tg.Tensor(torch.randn(6, 3)))
    msg = str(info.value)
    assert msg.startswith("linear: ") and " in 2 (Linear)" in msg and where in msg
    assert "(6, 4) float32 cpu" in msg and "(2, 4) float64 cpu" in msg and "dtype mismatch" in msg


@pytest.mark.parametrize("op", ["matmul", "linear"])  # the ops that torch does not promote either
def test_dtype_mismatch_names_both_dtypes(op):
    x, y = leaf(3, 3), leaf(3, 3, dtype=torch.float32)
    with pytest.raises(ShapeError) as info:
        getattr(tg, op)(x, y)
    msg = str(info.value)
    assert msg.startswith(f"{op}: ") and "float64" in msg and "float32" in msg and "dtype mismatch" in msg
    assert "test_errors.py:" in msg


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "cat", "stack", "where"])
def test_device_mismatch_names_both_devices(op):
    # Without a GPU the meta device stands in for a second device: torch refuses to mix it with cpu.
    x, y = leaf(3), leaf(3, device="meta")
    call = {
        "where": lambda: tg.where(torch.ones(3, dtype=torch.bool), x, y),
        "cat": lambda: tg.cat([x, y]),
        "stack": lambda: tg.stack([x, y]),
    }.get(op, lambda: getattr(tg, op)(x, y))
    with pytest.raises(ShapeError) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(f"{op}: ") and "(3,) float64 cpu" in msg and "(3,) float64 meta" in msg
    assert "different devices (cpu, meta)" in msg and "test_errors.py:" in msg


# --- misuse of a tape ------------------------------------------------------------------------
def test_non_scalar_target_without_grad_output():
    x = leaf(3)
    with tg.Tape() as tape:
        y = x.exp()
    where = site(2)
    with pytest.raises(TapeError) as info:
        tape.gradient(y, x)
    msg = str(info.value)
    assert "shape (3,)" in msg and "grad_output" in msg and where in msg


def test_grad_output_of_the_wrong_shape():
    x = leaf(3)
    with tg.Tape() as tape:
        y = x.exp()
    where = site(2)
    with pytest.raises(ShapeError) as info:
        tape.gradient(y, x, grad_output=tg.Tensor(torch.ones(2, dtype=F64)))
    msg = str(info.value)
    assert "grad_output has shape (2,)" in msg and "target has shape (3,)" in msg and where in msg


def test_second_use_of_a_one_shot_tape():
    x = leaf(3)
    with tg.Tape() as tape:
        y = x.exp().sum()
    tape.gradient(y, x)
    where = site(2)
    with pytest.raises(TapeError) as info:
        tape.gradient(y, x)
    msg = str(info.value)
    assert "persistent=False" in msg and "persistent=True" in msg and where in msg
    with pytest.raises(TapeError, match="persistent=True"):
        tape.backward(y)


def test_a_persistent_tape_replays_twice():
    x = leaf(3)
    with tg.Tape(persistent=True) as tape:
        y = x.exp().sum()
    first, second = tape.gradient(y, x), tape.gradient(y, x)
    assert torch.equal(first.data, second.data)


def test_target_not_recorded_on_this_tape():
    x = leaf(3)
    with tg.Tape() as tape:
        x.exp().sum()
    other = x.sin().sum()  # computed after the tape closed
    where = site(2)
    with pytest.raises(TapeError) as info:
        tape.gradient(other, x)
    msg = str(info.value)
    assert "not recorded on this tape" in msg and where in msg


def test_backward_of_a_tensor_no_tape_recorded():
    y = leaf(3).sum()  # no tape open
    where = site(2)
    with pytest.raises(TapeError) as info:
        y.backward()
    assert "not recorded on any tape" in str(info.value) and where in str(info.value)


def test_unused_source_without_allow_unused():
    x, unused = leaf(3), leaf(2, 2)
    with tg.Tape(persistent=True) as tape:
        y = x.exp().sum()
    where = site(2)
    with pytest.raises(TapeError) as info:
        tape.gradient(y, [x, unused])
    msg = str(info.value)
    assert "source 1 (2, 2) float64 cpu was not used" in msg and "allow_unused=True" in msg and where in msg
    gx, gu = tape.gradient(y, [x, unused], allow_unused=True)
    assert gu is None and torch.allclose(gx.data, x.data.exp())


def test_primitive_without_a_vjp():
    frozen = tg.primitive("test_errors_frozen", lambda a: a * 2, None)
    x = leaf(3)
    with tg.Tape() as tape:
        with tg.scope("2", module=Linear()):
            recorded = site(1)
            y = frozen(x)
        z = y.sum()
    called = site(2)
    with pytest.raises(TapeError) as info:
        tape.gradient(z, x)
    msg = str(info.value)
    assert msg.startswith("test_errors_frozen has no VJP") and "in 2 (Linear)" in msg and "(3,) float64 cpu" in msg
    assert recorded in msg and called in msg


def test_non_float_tensors_cannot_ask_for_gradients():
    where = site(2)
    with pytest.raises(TypeError) as info:
        tg.Tensor(torch.arange(3), requires_grad=True)
    assert "(3,) torch.int64" in str(info.value) and where in str(info.value)

    ints = tg.Tensor(torch.arange(3))
    with tg.Tape() as tape:
        where = site(2)
        with pytest.raises(TypeError) as info:
            tape.watch(ints)
    assert "(3,) int64 cpu" in str(info.value) and where in str(info.value)

    x = leaf(3)
    with tg.Tape() as tape:
        y = x.exp().sum()
    where = site(2)
    with pytest.raises(TapeError) as info:
        tape.gradient(y, ints)
    assert "source 0 is a torch.int64 tensor" in str(info.value) and where in str(info.value)


def test_integer_outputs_do_not_require_grad():
    x = leaf(3)
    assert not tg.Tensor(torch.arange(3)).requires_grad
    assert x.exp().requires_grad and not (x > 1).requires_grad


# --- the bad-input suite: invalid shapes for every built-in primitive ---------------------------
# These take no operand whose shape could disagree with another: any shape is valid.
NO_INVALID_SHAPES = {
    "neg", "exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "relu", "sigmoid",
    "clamp",  # min and max are numbers
    "cast",  # changes dtype or device only
    "log1p", "expm1", "erf", "gelu", "leaky_relu", "softplus",  # elementwise, one operand
    "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log2", "log10", "rsqrt",
    "sign", "floor", "ceil", "round", "trunc",
    "contiguous",  # the same values, laid out contiguously
}  # fmt: skip

side = st.integers(2, 4)


def shape(min_dims: int = 1, max_dims: int = 3) -> st.SearchStrategy:
    return st.lists(side, min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def clashing(draw, min_dims: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that do not broadcast: one dimension, aligned from the right, differs and is > 1."""
    a = draw(shape(min_dims))
    k = draw(st.integers(0, len(a) - 1))
    b = list(a)
    b[k] = draw(st.integers(2, 5).filter(lambda s: s != a[k]))
    b = b[draw(st.integers(0, k)) :]  # dropping leading dims keeps the right alignment
    b = [draw(side) for _ in range(draw(st.integers(0, 1)))] + b
    return (a, tuple(b)) if draw(st.booleans()) else (tuple(b), a)


def t(s) -> tg.Tensor:
    return leaf(*s)


@st.composite
def bad_binary(draw, op):
    a, b = draw(clashing())
    return lambda: getattr(tg, op)(t(a), t(b)), [a, b]


@st.composite
def bad_matmul(draw):
    case = draw(st.sampled_from(["2d", "1d", "batch", "scalar"]))
    m, n, k = draw(side), draw(side), draw(side)
    k2 = draw(st.integers(2, 5).filter(lambda v: v != k))
    if case == "2d":
        a, b = (m, k), (k2, n)
    elif case == "1d":
        a, b = (k,), (k2, n)
    elif case == "batch":
        b1 = draw(side)
        a, b = (b1, m, k), (draw(st.integers(2, 5).filter(lambda v: v != b1)), k, n)
    else:
        a, b = (), (k,)
    return lambda: tg.matmul(t(a), t(b)), [a, b]


@st.composite
def bad_linear(draw):
    x = draw(shape(1, 3))
    out_features = draw(side)
    if draw(st.booleans()):
        w = (out_features, draw(st.integers(2, 5).filter(lambda v: v != x[-1])))
        return lambda: tg.linear(t(x), t(w)), [x, w]
    w, b = (out_features, x[-1]), (draw(st.integers(2, 5).filter(lambda v: v != out_features)),)
    return lambda: tg.linear(t(x), t(w), t(b)), [x, w, b]


@st.composite
def bad_reshape(draw):
    a = draw(shape())
    n = 1
    for s in a:
        n *= s
    target = draw(shape().filter(lambda s: _numel(s) != n))
    return lambda: tg.reshape(t(a), target), [a, target]


def _numel(s) -> int:
    n = 1
    for v in s:
        n *= v
    return n


@st.composite
def bad_broadcast_to(draw):
    if draw(st.booleans()):
        a, target = draw(clashing())
        a, target = (a, target) if len(target) >= len(a) else (target, a)
    else:
        a = draw(shape(2))
        target = a[1:]  # fewer dimensions than the tensor
    return lambda: tg.broadcast_to(t(a), shape=target), [a, target]


@st.composite
def bad_sum_to(draw):
    a, target = draw(clashing())
    a, target = (a, target) if len(a) >= len(target) else (target, a)
    return lambda: tg.sum_to(t(a), shape=target), [a, target]


@st.composite
def bad_transpose(draw):
    a = draw(shape())
    d = draw(st.sampled_from([len(a), len(a) + 1, -len(a) - 1]))
    return lambda: tg.transpose(t(a), 0, d), [a, d]


@st.composite
def bad_permute(draw):
    a = draw(shape(2))
    dims = tuple(range(len(a))) + (0,) if draw(st.booleans()) else (0,) * len(a)
    return lambda: tg.permute(t(a), dims), [a, dims]


@st.composite
def bad_index(draw):
    a = draw(shape())
    i = draw(st.integers(a[0], a[0] + 3))
    return lambda: tg.index(t(a), i), [a, i]


@st.composite
def bad_index_scatter(draw):
    target = draw(shape())
    g = draw(shape().filter(lambda s: _numel(s) != _numel(target)))
    return lambda: tg.index_scatter(t(g), idx=slice(None), shape=target), [g, target]


@st.composite
def bad_join(draw, op):
    a, b = draw(clashing(min_dims=2 if op == "cat" else 1))
    if op == "cat" and len(a) == len(b):
        return lambda: tg.cat([t(a), t(b)], dim=len(a) - 1 - (a[-1] != b[-1])), [a, b]
    return lambda: getattr(tg, op)([t(a), t(b)]), [a, b]


@st.composite
def bad_where(draw):
    c, x = draw(clashing())
    return lambda: tg.where(torch.ones(c, dtype=torch.bool), t(x), t(x)), [c, x]


@st.composite
def bad_reduction(draw, op):
    a = draw(shape())
    d = draw(st.sampled_from([len(a), len(a) + 2, -len(a) - 1]))
    call = getattr(tg, op)
    return lambda: call(t(a), d), [a, d]


@st.composite
def bad_activation_grad(draw, op):
    a, b = draw(clashing())
    prim = tg.registered_primitives()[op]
    return lambda: prim(t(a), t(b)), [a, b]


@st.composite
def bad_dropout(draw):
    a, b = draw(clashing())
    return lambda: tg.registered_primitives()["dropout"](t(a), mask=torch.ones(b, dtype=F64)), [a, b]


@st.composite
def bad_norm(draw):
    a = draw(shape())
    d = draw(st.sampled_from([len(a), len(a) + 2, -len(a) - 1]))
    return lambda: tg.norm(t(a), dim=d), [a, d]


@st.composite
def bad_primitive_dim(draw, op):
    a = draw(shape())
    d = draw(st.sampled_from([len(a), len(a) + 2, -len(a) - 1]))
    prim = tg.registered_primitives()[op]
    return lambda: prim(t(a), dim=d), [a, d]


@st.composite
def bad_gather(draw, op):
    a = draw(shape(min_dims=2))
    index = torch.zeros(a[:-1], dtype=torch.long)  # one dimension short
    call = {"gather": lambda: tg.gather(t(a), 0, index)}.get(
        op, lambda: tg.registered_primitives()[op](t(a), dim=0, index=index, shape=a)
    )
    return call, [a, tuple(index.shape)] if op == "gather" else [a]


@st.composite
def bad_layer_norm(draw):
    a = draw(shape())
    normalized = (a[-1] + 1,)
    return lambda: tg.layer_norm(t(a), normalized), [a, normalized]


@st.composite
def bad_cross_entropy(draw):
    n, c = draw(side), draw(side)
    return lambda: tg.cross_entropy(t((n, c)), torch.zeros(n + 1, dtype=torch.long)), [(n, c), (n + 1,), (n,)]


@st.composite
def bad_embedding(draw, op):
    a = draw(shape(min_dims=3, max_dims=3))
    if op == "embedding":
        return lambda: tg.embedding(torch.zeros(2, dtype=torch.long), t(a)), [a]
    n = a[0] * a[1] + 1  # one more index than rows of g
    call = lambda: tg.embedding_backward(t(a[:2]), torch.zeros(n, dtype=torch.long), num_weights=3)  # noqa: E731
    return call, [a[:2], (n,)]


@st.composite
def bad_attention(draw):
    a, b = draw(shape(min_dims=2, max_dims=4)), draw(side)
    b = (*a[:-1], a[-1] + b)  # key's features differ from query's
    return lambda: tg.scaled_dot_product_attention(t(a), t(b), t(b)), [a, b]


@st.composite
def bad_gru(draw):
    steps, n, h = draw(side), draw(side), draw(side)
    gi, h0, w = (steps, n, 3 * h), (n, h + 1), (3 * h, h)  # the state's size disagrees with the gates'
    return lambda: tg.gru_recurrence(t(gi), t(h0), t(w)), [gi, h0, w]


@st.composite
def bad_lstm(draw):
    steps, n, h = draw(side), draw(side), draw(side)
    gi, h0, c0, w = (steps, n, 4 * h), (n, h), (n, h + 1), (4 * h, h)  # the cell state's size disagrees
    return lambda: tg.lstm_recurrence(t(gi), t(h0), t(c0), t(w)), [gi, h0, c0, w]


@st.composite
def bad_lstm_layer(draw):
    steps, n, i, h = draw(side), draw(side), draw(side), draw(side)
    x, w_ih, w_hh, h0 = (steps, n, i), (4 * h, i + 1), (4 * h, h), (n, h)  # w_ih does not take x's features
    return lambda: tg.lstm_layer(t(x), t(w_ih), t(w_hh), None, None, t(h0), t(h0)), [x, w_ih, w_hh, h0]


@st.composite
def bad_rnn(draw):
    steps, n, h = draw(side), draw(side), draw(side)
    gi, h0, w = (steps, n, h), (n, h), (h + 1, h)  # the weight is not (H, H)
    return lambda: tg.rnn_recurrence(t(gi), t(h0), t(w)), [gi, h0, w]


@st.composite
def bad_linear_chain(draw):
    x = draw(shape(1, 3))
    w1 = (draw(side), x[-1])
    w2 = (draw(side), draw(st.integers(2, 5).filter(lambda v: v != w1[0])))  # the second layer's in_features disagree
    call = lambda: tg.registered_primitives()["linear_chain"](  # noqa: E731
        t(x), t(w1), None, t(w2), None, activations=("relu", None)
    )
    return call, [x, w1, w2]


@st.composite
def bad_masked_fill(draw):
    a, b = draw(clashing())
    return lambda: tg.masked_fill(t(a), torch.ones(b, dtype=torch.bool), 0.0), [a, b]


@st.composite
def bad_conv(draw, op):
    """conv2d: channels that do not match the weight; its adjoints: operands of clashing shapes."""
    n, c, h = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(3, 5))
    x, w = (n, c, h, h), (2, c + 1, 3, 3)
    geometry = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    prims = tg.registered_primitives()
    call = {
        "conv2d": lambda: tg.conv2d(t(x), t(w)),
        "conv2d_input": lambda: prims[op](t(x), t((c + 1, 2, 3, 3)), shape=(n, 2, h + 2, h + 2), **geometry),
        "conv2d_weight": lambda: prims[op](t(x), t((n, 2, h - 2, h - 2)), shape=w, **geometry),
    }[op]
    return call, [x, w] if op == "conv2d" else [x]


@st.composite
def bad_pool(draw, op):
    a = draw(shape(max_dims=2))
    if op == "avg_pool2d_backward":
        g = (1, 1, 3, 3)
        call = lambda: tg.registered_primitives()[op](  # noqa: E731
            t(g), shape=(1, 1, 2, 2), kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False,
            count_include_pad=True, divisor_override=None,
        )  # fmt: skip
        return call, [g]
    return lambda: getattr(tg, op)(t(a), 2), [a]


@st.composite
def bad_lerp(draw):
    a, b = draw(clashing())
    return lambda: tg.lerp(t(a), t(b), 0.5), [a, b]


def _dim_call(op, x, d):
    return {
        "cumsum": lambda: tg.cumsum(x, d),
        "cumprod": lambda: tg.cumprod(x, d),
        "cummax": lambda: tg.cummax(x, d),
        "cummin": lambda: tg.cummin(x, d),
        "prod": lambda: tg.prod(x, d),
        "flip": lambda: tg.flip(x, (d,)),
        "roll": lambda: tg.roll(x, 1, d),
        "diagonal": lambda: tg.diagonal(x, 0, 0, d),
    }[op]


@st.composite
def bad_dim(draw, op):
    """A dimension outside the input's range."""
    a = draw(shape(2))
    d = draw(st.sampled_from([len(a), len(a) + 1, -len(a) - 1]))
    return _dim_call(op, t(a), d), [a]


@st.composite
def bad_triangle(draw, op):
    a = draw(shape(1, 1))  # tril and triu need a matrix
    return lambda: getattr(tg, op)(t(a)), [a]


@st.composite
def bad_window(draw, op):
    """narrow, unfold and index_select reaching past the end of a dimension."""
    a = draw(shape())
    past = draw(st.integers(a[0] + 1, a[0] + 3))
    call = {
        "narrow": lambda: tg.narrow(t(a), 0, 0, past),
        "unfold": lambda: tg.unfold(t(a), 0, past, 1),
        "index_select": lambda: tg.index_select(t(a), 0, torch.tensor([past])),
    }[op]
    return call, [past, a[0]] if op == "narrow" else [a]


@st.composite
def bad_window_backward(draw, op):
    """The VJPs of narrow, unfold, index_select and diagonal given a gradient of the wrong size."""
    a = draw(shape(2, 2))
    g = (a[0] + 1, a[1])
    prims = tg.registered_primitives()
    call = {
        "narrow_backward": lambda: prims[op](t(g), shape=a, dim=0, start=0),
        "unfold_backward": lambda: prims[op](t(g + (1,)), shape=a, dimension=0, size=1, step=1),
        "index_select_backward": lambda: prims[op](t(g), dim=0, index=torch.tensor([0]), shape=a),
        "diagonal_scatter": lambda: prims[op](t((min(a) + 1,)), shape=a, offset=0, dim1=0, dim2=1),
    }[op]
    return call, [a]


@st.composite
def bad_split(draw, op):
    """split_with_sizes with sizes that do not add up to the dimension, unbind past the last dimension."""
    a = draw(shape())
    if op == "unbind":
        return lambda: tg.unbind(t(a), len(a)), [a]
    sizes = (a[0] + draw(st.integers(1, 3)),)
    return lambda: tg.registered_primitives()[op](t(a), sizes=sizes, dim=0), [a, sizes]


@st.composite
def bad_einsum(draw):
    m, k, n = draw(side), draw(side), draw(side)
    k2 = draw(st.integers(2, 5).filter(lambda v: v != k))
    return lambda: tg.einsum("ij,jk->ik", t((m, k)), t((k2, n))), [(m, k), (k2, n)]


@st.composite
def bad_scatter(draw, op):
    x = draw(shape(2, 2))
    index = (x[0], x[1] + 1)  # wider than the target outside the scattered dimension
    call = lambda: getattr(tg, op)(t(x), 0, torch.zeros(index, dtype=torch.long), t(index))  # noqa: E731
    return call, [x, index]


@st.composite
def bad_batch_norm(draw):
    x = draw(shape(2, 4))
    c = (draw(st.integers(2, 5).filter(lambda v: v != x[1])),)
    return lambda: tg.batch_norm(t(x), t(c), t(c), training=True), [x, c]


@st.composite
def bad_index_put(draw):
    x = draw(shape(2, 3))
    v = (draw(st.integers(2, 5).filter(lambda s: s != x[-1])),)
    return lambda: tg.registered_primitives()["index_put"](t(x), t(v), idx=(0,)), [x, v]


BAD_INPUTS = {
    **{op: bad_binary(op) for op in ("add", "sub", "mul", "div", "pow")},
    **{op: bad_activation_grad(op) for op in ("tanh_backward", "sigmoid_backward")},
    "matmul": bad_matmul(),
    "linear": bad_linear(),
    "reshape": bad_reshape(),
    "broadcast_to": bad_broadcast_to(),
    "sum_to": bad_sum_to(),
    "transpose": bad_transpose(),
    "permute": bad_permute(),
    "index": bad_index(),
    "index_scatter": bad_index_scatter(),
    "cat": bad_join("cat"),
    "stack": bad_join("stack"),
    "where": bad_where(),
    **{op: bad_reduction(op) for op in ("sum", "mean", "max", "logsumexp", "softmax", "log_softmax")},
    **{op: bad_reduction(op) for op in ("min", "var", "std")},
    "norm": bad_norm(),
    **{op: bad_binary(op) for op in ("maximum", "minimum")},
    **{op: bad_primitive_dim(op) for op in ("max_dim", "min_dim")},
    "dropout": bad_dropout(),
    **{op: bad_gather(op) for op in ("gather", "gather_scatter")},
    "masked_fill": bad_masked_fill(),
    **{op: bad_conv(op) for op in ("conv2d", "conv2d_input", "conv2d_weight")},
    **{op: bad_pool(op) for op in ("max_pool2d", "avg_pool2d", "avg_pool2d_backward")},
    # the fused layer ops
    "layer_norm": bad_layer_norm(),
    "cross_entropy": bad_cross_entropy(),
    **{op: bad_embedding(op) for op in ("embedding", "embedding_backward")},
    "scaled_dot_product_attention": bad_attention(),
    "gru_recurrence": bad_gru(),
    "lstm_recurrence": bad_lstm(),
    "lstm_layer": bad_lstm_layer(),
    "rnn_recurrence": bad_rnn(),
    "linear_chain": bad_linear_chain(),
    # the binary, dimension, window and scatter ops
    **{op: bad_binary(op) for op in ("atan2", "copysign", "floor_divide", "fmod", "remainder", "trunc_divide")},
    "lerp": bad_lerp(),
    **{op: bad_dim(op) for op in ("cumsum", "cumprod", "cummax", "cummin", "prod", "flip", "roll", "diagonal")},
    **{op: bad_triangle(op) for op in ("tril", "triu")},
    **{op: bad_window(op) for op in ("narrow", "unfold", "index_select")},
    **{
        op: bad_window_backward(op)
        for op in ("narrow_backward", "unfold_backward", "index_select_backward", "diagonal_scatter")
    },
    "einsum": bad_einsum(),
    **{op: bad_scatter(op) for op in ("scatter", "scatter_add")},
    "batch_norm": bad_batch_norm(),
    "index_put": bad_index_put(),
    **{op: bad_split(op) for op in ("split_with_sizes", "unbind")},  # the multi-output views
}


def builtin_primitives() -> set[str]:
    return {
        name
        for name, p in tg.registered_primitives().items()
        if p.origin.startswith("tapegrad.") and not p.origin.startswith(NN_VIZ)
    }


def test_every_builtin_primitive_has_a_bad_input_spec():
    names = builtin_primitives()
    assert names, "the registry is empty"
    missing = names - BAD_INPUTS.keys() - NO_INVALID_SHAPES
    assert not missing, f"add a bad-input spec (or list as having no invalid shapes): {sorted(missing)}"
    assert not BAD_INPUTS.keys() & NO_INVALID_SHAPES


@pytest.mark.parametrize("op", sorted(BAD_INPUTS))
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_invalid_shapes_raise_a_value_error_naming_the_op_and_shapes(op, data):
    call, mentioned = data.draw(BAD_INPUTS[op])
    with pytest.raises(ValueError) as info:
        call()
    assert isinstance(info.value, ShapeError), type(info.value)
    msg = str(info.value)
    assert msg.startswith(f"{op}: "), msg
    for thing in mentioned:
        assert str(thing) in msg, (thing, msg)
    assert "test_errors.py:" in msg, msg


def test_out_of_range_dimension_is_both_a_value_and_an_index_error():
    with pytest.raises(IndexShapeError) as info:
        leaf(2, 3).sum(dim=4)
    assert isinstance(info.value, ValueError) and isinstance(info.value, IndexError)
