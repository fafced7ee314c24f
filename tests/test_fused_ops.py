"""The fused layer ops called as users call them, against torch.nn.functional in float64, and their cost:
one record each, a handful of aten kernels per step, no dtype copies.

The registry tests (test_primitives.py, test_registry_trace.py) check each primitive's VJP to second
order and its fast rule against its reference rule; these check the front ends' argument forms.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_specs import SPECS
from strategies import F64, examples, seeds
from test_ops_torch import compare, rand
from torch.utils._python_dispatch import TorchDispatchMode

import nn
import tapegrad as tg
from tapegrad.engine.errors import IndexShapeError, ShapeError
from tapegrad.engine.release import Released


class AtenCalls(TorchDispatchMode):
    """Counts the aten ops torch runs inside the context (what a step launches)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.calls[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))


def step_calls(fn, *leaves: tg.Tensor) -> tuple[int, Counter[str]]:
    """(records, aten calls) of one forward and first-order backward of ``fn`` on ``leaves``."""
    with AtenCalls() as seen:
        with tg.Tape() as tape:
            out = fn(*leaves)
        records = len(tape)
        tape.backward(out)
    return records, seen.calls


LAYER_NORM = {
    "affine": (
        lambda x, w, b: tg.layer_norm(x, 5, w, b),
        lambda x, w, b: F.layer_norm(x, (5,), w, b),
    ),
    "two dims": (
        lambda x, w, b: tg.layer_norm(x, (4, 5), w.reshape(1, 5).expand(4, 5), None, 1e-3),
        lambda x, w, b: F.layer_norm(x, (4, 5), w.reshape(1, 5).expand(4, 5), None, 1e-3),
    ),
    "bias only": (lambda x, w, b: tg.layer_norm(x, [5], bias=b), lambda x, w, b: F.layer_norm(x, [5], bias=b)),
    "plain": (lambda x, w, b: tg.layer_norm(x, 5), lambda x, w, b: F.layer_norm(x, (5,))),
}


@pytest.mark.parametrize("name", sorted(LAYER_NORM))
@settings(max_examples=examples(5), deadline=None)
@given(seed=seeds)
def test_layer_norm_matches_torch(name, seed):
    ours, theirs = LAYER_NORM[name]
    compare(ours, theirs, rand(3, 4, 5, seed=seed), rand(5, seed=seed + 1), rand(5, seed=seed + 2), seed=seed)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@settings(max_examples=examples(5), deadline=None)
@given(dim=st.sampled_from([0, 1, -1]), seed=seeds)
def test_softmax_matches_torch_with_and_without_dtype(op, dim, seed):
    compare(lambda x: getattr(tg, op)(x, dim), lambda x: getattr(torch, op)(x, dim), rand(3, 4, 5, seed=seed))
    compare(lambda x: getattr(x, op)(dim), lambda x: getattr(x, op)(dim), rand(3, 4, seed=seed))
    # dtype=: the input is cast first (a float32 input computed in float64, its gradient back in float32)
    x32 = rand(3, 4, seed=seed).float()
    ours_fn, ref_fn = getattr(tg, op), getattr(torch, op)
    x = tg.Tensor(x32, requires_grad=True)
    with tg.Tape() as tape:
        out = ours_fn(x, dim, dtype=F64)
    ref_x = x32.clone().requires_grad_()
    ref = ref_fn(ref_x, dim, dtype=F64)
    assert out.dtype == F64
    torch.testing.assert_close(out.data, ref.detach())
    g = torch.randn(out.shape, dtype=F64)
    torch.testing.assert_close(tape.gradient(out, x, tg.Tensor(g)).data, torch.autograd.grad(ref, ref_x, g)[0])


CROSS_ENTROPY_OPTIONS = st.fixed_dictionaries(
    {
        "reduction": st.sampled_from(["mean", "sum", "none"]),
        "label_smoothing": st.sampled_from([0.0, 0.1]),
        "ignore_index": st.sampled_from([-100, 1]),
        "weight": st.booleans(),
    }
)


@settings(max_examples=examples(20), deadline=None)
@given(shape=st.sampled_from([(6, 4), (4,), (3, 4, 2), (2, 4, 2, 2)]), options=CROSS_ENTROPY_OPTIONS, seed=seeds)
def test_cross_entropy_with_class_indices_matches_torch(shape, options, seed):
    gen = torch.Generator().manual_seed(seed)
    target_shape = (shape[0], *shape[2:]) if len(shape) > 1 else ()
    target = torch.randint(0, 4, target_shape, generator=gen)
    target.view(-1)[0] = 0  # never every target ignored (a mean of nothing is NaN, in torch too)
    kw = dict(options, weight=torch.rand(4, generator=gen, dtype=F64) + 0.5 if options["weight"] else None)
    compare(
        lambda x: tg.cross_entropy(x, target, **kw), lambda x: F.cross_entropy(x, target, **kw), rand(*shape, seed=seed)
    )
    # the module computes the same (a tg integer tensor as the target too)
    module = nn.CrossEntropyLoss(**kw)
    compare(lambda x: module(x, tg.Tensor(target)), lambda x: F.cross_entropy(x, target, **kw), rand(*shape, seed=seed))


@settings(max_examples=examples(10), deadline=None)
@given(shape=st.sampled_from([(5, 3), (3,), (2, 3, 2)]), options=CROSS_ENTROPY_OPTIONS, seed=seeds)
def test_cross_entropy_with_probabilities_matches_torch(shape, options, seed):
    kw = dict(options, weight=rand(3, seed=seed).abs() + 0.5 if options["weight"] else None)
    del kw["ignore_index"]
    probs = torch.softmax(rand(*shape, seed=seed + 1), 1 if len(shape) > 1 else 0)
    compare(lambda x, q: tg.cross_entropy(x, q, **kw), lambda x, q: F.cross_entropy(x, q, **kw), rand(*shape), probs)


def test_cross_entropy_refuses_bad_targets_naming_the_range():
    x = tg.Tensor(rand(3, 4), requires_grad=True)
    with pytest.raises(IndexShapeError, match=r"cross_entropy: .*out of bounds"):
        tg.cross_entropy(x, torch.tensor([0, 4, 1]))
    with pytest.raises(IndexShapeError, match=r"CrossEntropyLoss: class indices must lie in \[0, 3\].*\[-1, 4\]"):
        nn.CrossEntropyLoss()(x, torch.tensor([-1, 4, 1]))
    with pytest.raises(ShapeError, match=r"cross_entropy: class indices \(4,\) must have shape \(3,\)"):
        tg.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ShapeError, match=r"cross_entropy: weight \(3,\) must have shape \(4,\)"):
        tg.cross_entropy(x, torch.tensor([0, 1, 2]), weight=torch.ones(3))
    with pytest.raises(ValueError, match="cross_entropy: reduction must be"):
        tg.cross_entropy(x, torch.tensor([0, 1, 2]), reduction="avg")


def test_layer_norm_refuses_mismatched_shapes():
    x = tg.Tensor(rand(3, 4), requires_grad=True)
    with pytest.raises(ShapeError, match=r"layer_norm: input \(3, 4\) does not end in normalized_shape \(3,\)"):
        tg.layer_norm(x, 3)
    with pytest.raises(ShapeError, match=r"layer_norm: weight \(3,\) must have normalized_shape \(4,\)"):
        tg.layer_norm(x, 4, torch.ones(3, dtype=F64))


EMBEDDING_OPTIONS = [{}, {"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True}]
EMBEDDING_OPTIONS += [{"padding_idx": 0, "scale_grad_by_freq": True}]


@pytest.mark.parametrize("options", EMBEDDING_OPTIONS, ids=str)
def test_embedding_matches_torch(options):
    indices = torch.tensor([[0, 2, 2, 5], [1, 2, 0, 0]])
    compare(lambda w: tg.embedding(indices, w, **options), lambda w: F.embedding(indices, w, **options), rand(6, 3))
    # the weight's gradient is linear in g: its own VJP (second order) against finite differences,
    # since torch's double backward leaves scale_grad_by_freq out
    padding = options.get("padding_idx", -1) % 6
    params = {"padding_idx": padding if "padding_idx" in options else -1, "num_weights": 6}
    params["scale_grad_by_freq"] = options.get("scale_grad_by_freq", False)
    assert tg.gradcheck(lambda g: tg.embedding_backward(g, indices, **params), [rand(2, 4, 3)])


def test_embedding_max_norm_renormalises_the_rows_in_place_as_torch():
    indices = torch.tensor([0, 3, 3])
    ours_w, ref_w = rand(5, 4) * 3, rand(5, 4) * 3
    ref_w.copy_(ours_w)
    compare(lambda w: tg.embedding(indices, w, max_norm=1.0), lambda w: F.embedding(indices, w, max_norm=1.0), ours_w)
    F.embedding(indices, ref_w, max_norm=1.0)
    # compare() ran on clones: renormalise our own table to see the in-place change
    tg.embedding(indices, tg.Tensor(ours_w), max_norm=1.0)
    torch.testing.assert_close(ours_w, ref_w)
    assert ours_w[[0, 3]].norm(dim=1).max() <= 1.0 + 1e-12


def test_embedding_refuses_float_indices_and_sparse():
    w = tg.Tensor(rand(4, 2), requires_grad=True)
    with pytest.raises(TypeError, match="embedding: input must hold integer indices, got torch.float32"):
        tg.embedding(torch.tensor([0.0]), w)
    with pytest.raises(ValueError, match="embedding: sparse gradients are not supported"):
        tg.embedding(torch.tensor([0]), w, sparse=True)
    with pytest.raises(IndexShapeError, match="embedding: cannot apply to"):
        tg.embedding(torch.tensor([4]), w)


ATTENTION = {
    "plain": ((2, 3, 5, 4), (2, 3, 6, 4), {}),
    "causal": ((2, 3, 5, 4), (2, 3, 6, 4), {"is_causal": True}),
    "bool mask, scale": ((2, 3, 5, 4), (2, 3, 6, 4), {"attn_mask": torch.rand(5, 6) > 0.3, "scale": 0.7}),
    "float mask per batch": ((2, 3, 5, 4), (2, 3, 6, 4), {"attn_mask": rand(2, 1, 5, 6)}),
    "3-D causal": ((3, 5, 4), (3, 6, 4), {"is_causal": True}),
    "2-D (composed)": ((5, 4), (6, 4), {"is_causal": True}),
    "5-D (composed)": ((2, 1, 2, 3, 4), (2, 1, 2, 3, 4), {}),
    "grouped heads": ((2, 4, 5, 4), (2, 2, 6, 4), {"enable_gqa": True}),
}
ATTENTION["bool mask, scale"][2]["attn_mask"][:, 0] = True  # no row masked entirely


@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_attention_matches_torch(name):
    q_shape, kv_shape, kw = ATTENTION[name]
    ours, theirs = tg.scaled_dot_product_attention, F.scaled_dot_product_attention
    compare(lambda q, k, v: ours(q, k, v, **kw), lambda q, k, v: theirs(q, k, v, **kw), *(
        rand(*s, seed=i) for i, s in enumerate([q_shape, kv_shape, kv_shape])
    ))  # fmt: skip


def test_attention_with_a_mask_that_requires_grad_and_with_dropout_is_composed():
    q, k, v, mask = rand(2, 5, 4), rand(2, 6, 4, seed=1), rand(2, 6, 4, seed=2), rand(5, 6, seed=3)

    def reference(q, k, v, mask, p=0.0):
        weights = torch.softmax(q @ k.mT / 2 + mask, -1)
        if p:  # the mask tg.dropout draws from the generator in the same state
            weights = weights * (torch.bernoulli(torch.full_like(weights, 1 - p)) / (1 - p))
        return weights @ v

    ours = tg.scaled_dot_product_attention
    compare(lambda q, k, v, m: ours(q, k, v, attn_mask=m), reference, q, k, v, mask)
    torch.manual_seed(5)
    expected = reference(q, k, v, mask, 0.5)
    torch.manual_seed(5)
    with tg.Tape() as tape:
        out = ours(tg.Tensor(q, requires_grad=True), k, v, attn_mask=mask, dropout_p=0.5)
    torch.testing.assert_close(out.data, expected)
    assert "dropout" in [r.primitive.name for r in tape]


def test_attention_refuses_mismatched_shapes():
    with pytest.raises(ShapeError, match=r"query \(2, 5, 4\), key \(2, 6, 3\) and value \(2, 6, 3\)"):
        tg.scaled_dot_product_attention(rand(2, 5, 4), rand(2, 6, 3), rand(2, 6, 3))
    with pytest.raises(ShapeError, match="query's 3 heads are not a multiple of key/value's 2"):
        tg.scaled_dot_product_attention(rand(1, 3, 5, 4), rand(1, 2, 6, 4), rand(1, 2, 6, 4), enable_gqa=True)


# --- cost: one record, torch's kernels, no dtype copies -----------------------------------------------
def test_layers_record_one_op_each_and_launch_few_kernels():
    x = tg.Tensor(torch.randn(8, 16), requires_grad=True)
    norm = nn.LayerNorm(16)
    records, calls = step_calls(lambda a: norm(a).sum(), x)
    assert records == 2, calls  # layer_norm, sum
    # the forward keeps mean and 1/std (residuals): no second native_layer_norm in the backward pass
    assert calls["native_layer_norm"] == 1 and calls["native_layer_norm_backward"] == 1, calls
    assert not calls["_to_copy"], calls

    labels = torch.randint(0, 16, (8,))
    records, calls = step_calls(lambda a: nn.CrossEntropyLoss()(a, labels), x)
    assert records == 1, calls
    assert calls["nll_loss_backward"] == 1 and calls["_log_softmax_backward_data"] == 1, calls
    assert not calls["_to_copy"] and sum(calls.values()) <= 10, calls

    for op, backward in (("softmax", "_softmax_backward_data"), ("log_softmax", "_log_softmax_backward_data")):
        records, calls = step_calls(lambda a, op=op: getattr(a, op)(-1).sum(), x)
        assert records == 2 and calls[backward] == 1 and not calls["_to_copy"], calls

    weight = tg.Tensor(torch.randn(10, 16), requires_grad=True)
    records, calls = step_calls(lambda w: tg.embedding(torch.tensor([[1, 2], [2, 9]]), w, padding_idx=0).sum(), weight)
    assert records == 2 and calls["embedding"] == 1 and calls["embedding_dense_backward"] == 1, calls

    records, calls = step_calls(lambda a: tg.gelu(a, approximate="tanh").sum(), x)
    assert records == 2 and calls["gelu_backward"] == 1 and sum(calls.values()) <= 6, calls

    q = tg.Tensor(torch.randn(2, 4, 16, 8), requires_grad=True)
    records, calls = step_calls(lambda a: tg.scaled_dot_product_attention(a, a, a, is_causal=True).sum(), q)
    assert records == 2 and calls["_scaled_dot_product_flash_attention_for_cpu_backward"] == 1, calls
    assert calls["_scaled_dot_product_flash_attention_for_cpu"] == 1 and sum(calls.values()) <= 7, calls


# --- saves=: each rule reads only what its primitive declares ----------------------------------------
FUSED = ["layer_norm", "softmax", "log_softmax", "cross_entropy", "embedding", "embedding_backward", "gelu"]
FUSED += ["scaled_dot_product_attention", "dropout"]


def poisoned(t: torch.Tensor) -> tg.Tensor:
    """A tg.Tensor whose values are gone (its metadata stays), as a record holds an unsaved tensor."""
    p = tg.Tensor(t)
    p.data = Released(t)
    return p


def run_rule(prim: tg.Primitive, fast: bool, g: Any, out: Any, args: list, params: dict) -> list:
    vjps, vjp = (prim.fast_vjps, prim.fast_vjp) if fast else (prim.vjps, prim.vjp)
    if vjps is not None:
        return [rule(g, out, *args, **params) if rule is not None else None for rule in vjps]
    return list(vjp(g, out, *args, **params))


@pytest.mark.parametrize("name", FUSED)
@settings(max_examples=examples(10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rules_read_only_the_tensors_their_primitive_saves(name, data):
    prim = tg.registered_primitives()[name]
    assert prim.saves is not None, f"{name} declares no saves="
    kept, keep_out = prim.saves
    case = data.draw(SPECS[name])
    out = prim.forward(*case.args, **case.params)
    g = torch.randn(out.shape, dtype=out.dtype)
    floats = case.differentiable()
    unsaved = [i for i in floats if kept is not None and i not in kept]
    for fast in [True, False] if prim.has_fast_vjp else [False]:
        wrap = (lambda a: a) if fast else (lambda a: tg.Tensor(a) if isinstance(a, torch.Tensor) else a)
        full = run_rule(prim, fast, wrap(g), wrap(out), [wrap(a) for a in case.args], case.params)
        args = [poisoned(a) if i in unsaved else wrap(a) for i, a in enumerate(case.args)]
        bare = run_rule(prim, fast, wrap(g), wrap(out) if keep_out else poisoned(out), args, case.params)
        for i in floats:
            if full[i] is not None:
                torch.testing.assert_close(tg.Tensor(bare[i]).data if fast else bare[i].data, tg.Tensor(full[i]).data)
