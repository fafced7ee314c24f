"""A tensor that a record saved, changed in place before the replay, raises `tg.InPlaceError`.

Driven by the registry: every built-in differentiable primitive has a valid call below, and each
of its saved tensors (every tensor input, then the output) is mutated in turn.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

import nn
import tapegrad as tg

NN_VIZ = ("tapegrad.nn.", "tapegrad.viz.")  # nn's own primitives (mse_loss) are not the core's

F64 = torch.float64


def leaf(*shape: int) -> tg.Tensor:
    """Values in [0.5, 1.5): valid for log, sqrt, pow, and away from the kinks of relu and abs."""
    return tg.Tensor(torch.rand(shape, dtype=F64) + 0.5, requires_grad=True)


def site(offset: int = 1) -> str:
    frame = sys._getframe(1)
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno + offset} in {frame.f_code.co_name}"


_CONV = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
_POOL = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "ceil_mode": False}
_AVG = {"count_include_pad": True, "divisor_override": None}

# name -> () -> (positional args, params): one valid call of each built-in primitive.
VALID = {
    **{op: lambda: ((leaf(2, 3),), {}) for op in ("neg", "exp", "log", "sqrt", "abs", "sin", "cos", "tanh")},
    **{op: lambda: ((leaf(2, 3),), {}) for op in ("relu", "sigmoid", "sum", "mean", "max")},
    **{op: lambda: ((leaf(2, 3), leaf(2, 3)), {}) for op in ("add", "sub", "mul", "div", "pow")},
    **{op: lambda: ((leaf(2, 3), leaf(2, 3)), {}) for op in ("tanh_backward", "sigmoid_backward")},
    **{op: lambda: ((leaf(2, 3),), {"dim": 1}) for op in ("logsumexp", "softmax", "log_softmax")},
    "matmul": lambda: ((leaf(2, 3), leaf(3, 4)), {}),
    "linear": lambda: ((leaf(2, 3), leaf(4, 3), leaf(4)), {}),
    "linear_chain": lambda: ((leaf(2, 3), leaf(4, 3), leaf(4), leaf(2, 4), None), {"activations": ("relu", None)}),
    "broadcast_to": lambda: ((leaf(1, 3),), {"shape": (2, 3)}),
    "sum_to": lambda: ((leaf(2, 3),), {"shape": (1, 3)}),
    "reshape": lambda: ((leaf(2, 3),), {"shape": (3, 2)}),
    "transpose": lambda: ((leaf(2, 3),), {"dim0": 0, "dim1": 1}),
    "permute": lambda: ((leaf(2, 3, 4),), {"dims": (2, 0, 1)}),
    "index": lambda: ((leaf(3, 4),), {"idx": (slice(0, 2),)}),
    "index_scatter": lambda: ((leaf(2, 4),), {"idx": (slice(0, 2),), "shape": (3, 4)}),
    "cat": lambda: ((leaf(2, 3), leaf(1, 3)), {"dim": 0}),
    "stack": lambda: ((leaf(2, 3), leaf(2, 3)), {"dim": 1}),
    "where": lambda: ((torch.tensor([True, False, True]), leaf(3), leaf(3)), {}),
    "clamp": lambda: ((leaf(2, 3),), {"min": 0.7, "max": 1.2}),
    "cast": lambda: ((leaf(2, 3),), {"dtype": torch.float32}),
    # the ops beyond the seeds
    **{op: lambda: ((leaf(2, 3),), {}) for op in ("min", "log1p", "expm1", "erf", "gelu", "leaky_relu", "softplus")},
    **{op: lambda: ((leaf(2, 3),), {"dim": 1}) for op in ("max_dim", "min_dim", "var", "std", "norm")},
    **{op: lambda: ((leaf(2, 3), leaf(2, 3)), {}) for op in ("maximum", "minimum")},
    "dropout": lambda: ((leaf(2, 3),), {"mask": torch.full((2, 3), 2.0, dtype=torch.float64)}),
    "gather": lambda: ((leaf(2, 3),), {"dim": 1, "index": torch.tensor([[0, 2], [1, 1]])}),
    "gather_scatter": lambda: ((leaf(2, 2),), {"dim": 1, "index": torch.tensor([[0, 2], [1, 1]]), "shape": (2, 3)}),
    "masked_fill": lambda: ((leaf(2, 3), torch.tensor([[True, False, True]] * 2)), {"value": 0.0}),
    "conv2d": lambda: ((leaf(1, 2, 4, 4), leaf(3, 2, 3, 3), leaf(3)), _CONV),
    "conv2d_input": lambda: ((leaf(1, 3, 2, 2), leaf(3, 2, 3, 3)), {"shape": (1, 2, 4, 4), **_CONV}),
    "conv2d_weight": lambda: ((leaf(1, 2, 4, 4), leaf(1, 3, 2, 2)), {"shape": (3, 2, 3, 3), **_CONV}),
    "max_pool2d": lambda: ((leaf(1, 2, 4, 4),), {**_POOL, "dilation": (1, 1)}),
    "avg_pool2d": lambda: ((leaf(1, 2, 4, 4),), {**_POOL, **_AVG}),
    "avg_pool2d_backward": lambda: ((leaf(1, 2, 2, 2),), {"shape": (1, 2, 4, 4), **_POOL, **_AVG}),
    # the fused layer ops
    "layer_norm": lambda: ((leaf(2, 3), leaf(3), leaf(3)), {"normalized_shape": [3], "eps": 1e-5}),
    "cross_entropy": lambda: ((leaf(2, 3), torch.tensor([0, 2])), {}),
    "embedding": lambda: ((torch.tensor([0, 2]), leaf(3, 2)), {}),
    "embedding_backward": lambda: ((leaf(2, 2), torch.tensor([0, 2])), {"num_weights": 3}),
    "scaled_dot_product_attention": lambda: ((leaf(1, 2, 3, 4), leaf(1, 2, 3, 4), leaf(1, 2, 3, 4)), {}),
    "gru_recurrence": lambda: ((leaf(3, 2, 6), leaf(2, 2), leaf(6, 2), leaf(6)), {}),
    "lstm_recurrence": lambda: ((leaf(3, 2, 8), leaf(2, 1), leaf(2, 2), leaf(8, 1), leaf(8), leaf(1, 2)), {}),
    "rnn_recurrence": lambda: ((leaf(3, 2, 2), leaf(2, 2), leaf(2, 2), leaf(2)), {}),
    "lstm_layer": lambda: ((leaf(3, 2, 3), leaf(8, 3), leaf(8, 2), leaf(8), leaf(8), leaf(2, 2), leaf(2, 2)), {}),
    "index_put": lambda: ((leaf(3, 4), leaf(4)), {"idx": (0,)}),
    "batch_norm": lambda: ((leaf(4, 3), leaf(3), leaf(3)), {"training": True}),
    # issue 23's ops
    **{op: lambda: ((leaf(2, 3),), {}) for op in ("tan", "atan", "sinh", "cosh", "asinh", "rsqrt", "log2", "log10")},
    **{op: lambda: ((leaf(2, 3) - 1,), {}) for op in ("asin", "acos", "atanh")},  # in (-0.5, 0.5)
    **{op: lambda: ((leaf(2, 3),), {}) for op in ("sign", "floor", "ceil", "trunc", "round", "contiguous")},
    **{op: lambda: ((leaf(2, 3), leaf(2, 3)), {}) for op in ("atan2", "copysign", "fmod", "remainder")},
    **{op: lambda: ((leaf(2, 3), leaf(2, 3)), {}) for op in ("floor_divide", "trunc_divide")},
    "acosh": lambda: ((leaf(2, 3) + 1,), {}),
    "lerp": lambda: ((leaf(2, 3), leaf(2, 3), leaf(2, 3)), {}),
    "prod": lambda: ((leaf(2, 3),), {"dim": 1}),
    **{op: lambda: ((leaf(2, 3),), {"dim": 1}) for op in ("cumsum", "cumprod", "cummax", "cummin")},
    "flip": lambda: ((leaf(2, 3),), {"dims": (1,)}),
    "roll": lambda: ((leaf(2, 3),), {"shifts": (1,), "dims": (1,)}),
    **{op: lambda: ((leaf(3, 3),), {"diagonal": 0}) for op in ("tril", "triu")},
    "diagonal": lambda: ((leaf(3, 3),), {"offset": 0, "dim1": 0, "dim2": 1}),
    "diagonal_scatter": lambda: ((leaf(3),), {"shape": (3, 3), "offset": 0, "dim1": 0, "dim2": 1}),
    "unfold": lambda: ((leaf(2, 4),), {"dimension": 1, "size": 2, "step": 1}),
    "unfold_backward": lambda: ((leaf(2, 3, 2),), {"shape": (2, 4), "dimension": 1, "size": 2, "step": 1}),
    **{
        op: lambda: ((leaf(2, 3), leaf(2, 2)), {"dim": 1, "index": torch.tensor([[0, 2], [1, 0]])})
        for op in ("scatter", "scatter_add")
    },
    "einsum": lambda: ((leaf(2, 3), leaf(3, 4)), {"equation": "ij,jk->ik"}),
    "index_select": lambda: ((leaf(2, 3),), {"dim": 1, "index": torch.tensor([2, 0, 2])}),
    "index_select_backward": lambda: ((leaf(2, 3),), {"dim": 1, "index": torch.tensor([2, 0, 2]), "shape": (2, 4)}),
    "narrow": lambda: ((leaf(2, 4),), {"dim": 1, "start": 1, "length": 2}),
    "narrow_backward": lambda: ((leaf(2, 2),), {"shape": (2, 4), "dim": 1, "start": 1}),
    # the multi-output views (issue 22, multi)
    "split_with_sizes": lambda: ((leaf(4, 3),), {"sizes": (1, 3), "dim": 0}),
    "unbind": lambda: ((leaf(2, 3),), {"dim": 1}),
}


def mutate(data: torch.Tensor) -> None:
    """Change a tensor in place; an expanded view (broadcast_to's output) is changed through its base."""
    if data._base is not None and data.stride().count(0):
        data = data._base
    data.add_(0.25)


def builtin_differentiable() -> list[str]:
    prims = tg.registered_primitives()
    return sorted(
        n
        for n, p in prims.items()
        if p.origin.startswith("tapegrad.") and not p.origin.startswith(NN_VIZ) and p.differentiable
    )


def is_saved(name: str, which: int | str) -> bool:
    """Whether the primitive's ``saves=`` keeps that input (a position) or its output ("output")."""
    saves = tg.registered_primitives()[name].saves
    if saves is None:
        return True
    kept, keep_out = saves
    return keep_out if which == "output" else kept is None or which in kept


def saved_cases(saved: bool = True) -> list[tuple[str, int | str]]:
    """(primitive, which tensor) for every tensor input of every spec and its output, that it saves
    (``saved``) or does not save."""
    cases = []
    for name in sorted(VALID):
        args, _ = VALID[name]()
        which = [i for i, a in enumerate(args) if isinstance(a, tg.Tensor)] + ["output"]
        cases += [(name, w) for w in which if is_saved(name, w) == saved]
    return cases


def test_every_builtin_differentiable_primitive_has_a_valid_call():
    missing = set(builtin_differentiable()) - VALID.keys()
    assert not missing, f"add a valid call to VALID for: {sorted(missing)}"


def _record(name: str):
    args, params = VALID[name]()
    prim = tg.registered_primitives()[name]
    tape = tg.Tape()
    with tape:
        out = prim(*args, **params)
    assert len(tape) == 1, tape.records
    sources = [a for a in args if isinstance(a, tg.Tensor)]
    return tape, args, out, sources


def _first(out):
    """The output, or a multi-output primitive's first output (the replays start from it)."""
    return out[0] if isinstance(out, tuple) else out


def _replay(tape, out, sources):
    out = _first(out)
    ones = tg.Tensor(torch.ones_like(out.data))
    return tape.gradient(out, sources, grad_output=ones, allow_unused=True)


@pytest.mark.parametrize("name,which", saved_cases())
def test_in_place_change_of_a_saved_tensor_is_caught(name, which):
    tape, args, out, sources = _record(name)
    changed = _first(out) if which == "output" else args[which]
    saved = [(f"input {i}", a) for i, a in enumerate(args) if isinstance(a, tg.Tensor) and is_saved(name, i)]
    outs = [("its output", out)] if not isinstance(out, tuple) else [(f"its output {k}", o) for k, o in enumerate(out)]
    saved += outs if is_saved(name, "output") else []
    before = [t.data._version for _, t in saved]
    mutate(changed.data)
    with pytest.raises(tg.InPlaceError) as info:
        _replay(tape, out, sources)
    msg = str(info.value)
    # A view (reshape, index, ...) shares its version counter with its base: the first changed one is named.
    role, tensor = next((r, t) for (r, t), v in zip(saved, before) if t.data._version != v)
    assert msg.startswith(f"{name} (recorded at "), msg
    assert f"saved {role} {tuple(tensor.shape)}" in msg and "modified in place" in msg
    recorded, replayed = msg.split("saved")[0], msg.split("backward pass was called at")[1]
    assert "test_inplace.py:" in recorded and recorded.endswith(" in _record) ")  # the user's lines
    assert "test_inplace.py:" in replayed and replayed.endswith(" in _replay")


@pytest.mark.parametrize("name,which", saved_cases(saved=False))
def test_in_place_change_of_a_tensor_not_saved_is_fine(name, which):
    args, params = VALID[name]()
    prim = tg.registered_primitives()[name]
    with tg.Tape() as first:
        out = prim(*args, **params)
    with tg.Tape() as second:
        again = prim(*args, **params)
    sources = [a for a in args if isinstance(a, tg.Tensor)]
    want = _replay(first, out, sources)
    mutate(_first(again).data if which == "output" else args[which].data)
    got = _replay(second, again, sources)  # the rules never read what was changed
    for a, b in zip(got, want):
        assert (a is None) == (b is None) and (a is None or torch.equal(a.data, b.data))


@pytest.mark.parametrize("name", sorted(VALID))
def test_replay_without_changes_is_not_refused(name):
    tape, args, out, sources = _record(name)
    grads = _replay(tape, out, sources)
    assert any(g is not None for g in grads)


def test_change_through_a_view_is_caught():
    x = leaf(4)
    with tg.Tape() as tape:
        y = (x * x).sum()
    x.data[1:3].zero_()  # a view shares the version counter of its base
    with pytest.raises(tg.InPlaceError, match=r"^mul .*saved input 0, 1 \(4,\) float64 cpu"):
        tape.gradient(y, x)


def test_change_before_recording_is_fine():
    x = leaf(3)
    x.data.mul_(2)
    with tg.Tape() as tape:
        y = x.exp().sum()
    assert torch.allclose(tape.gradient(y, x).data, x.data.exp())


def test_the_error_names_the_module_scope_of_the_record():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x = tg.Tensor(torch.randn(5, 3))
    with tg.Tape() as tape:
        loss = model(x).sum()
    model[0].weight.data.mul_(0.5)  # an optimizer step before backward
    with pytest.raises(tg.InPlaceError) as info:
        tape.backward(loss)
    msg = str(info.value)
    assert msg.startswith("linear (in 0 (Linear), recorded at ") and "saved input 1 (4, 3) float32 cpu" in msg
