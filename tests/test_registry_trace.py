"""Every registered primitive through `tg.trace` against the eager replay, and every fast rule against
its reference rule: registry-driven, like test_primitives.py, so no op escapes."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_specs import SPECS
from op_specs_multi import flat_out
from strategies import examples, seeds, upstream

import nn  # noqa: F401  (registers nn's own primitives)
import tapegrad as tg
from tapegrad.tracing import replay_inductor

PRIMITIVES = tg.registered_primitives()
BUILTIN = sorted(n for n, p in PRIMITIVES.items() if p.origin.startswith(("tapegrad.", "nn.")))
FAST = sorted(n for n in BUILTIN if PRIMITIVES[n].has_fast_vjp)
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
SETTINGS = settings(max_examples=examples(15), deadline=None, suppress_health_check=SLOW_OK)
TRACE_SETTINGS = settings(max_examples=examples(10), deadline=None, suppress_health_check=SLOW_OK)
CAPTURED: set[str] = set()  # the primitives whose step went through inductor's capture (once each: make_fx is slow)
BRANCHES_ON_VALUES = {"prod"}  # a rule that tests its input in Python (for zeros): the capture declines, Python runs


def with_leaves(case, leaves):
    args = list(case.args)
    for i, leaf in zip(case.differentiable(), leaves):
        args[i] = leaf
    return args


@pytest.mark.parametrize("name", BUILTIN)
@TRACE_SETTINGS
@given(data=st.data())
def test_traced_step_equals_eager_backward(name, data):
    prim = PRIMITIVES[name]
    case = data.draw(SPECS[name], label="case")
    seed = data.draw(seeds, label="seed")
    raw = [case.args[i] for i in case.differentiable()]
    out = flat_out(prim.forward(*case.args, **case.params))
    weight = tg.Tensor(upstream(out.shape, seed).to(out.dtype))
    leaves = [tg.Tensor(a.clone(), requires_grad=True) for a in raw]

    def loss():
        return (flat_out(prim(*with_leaves(case, leaves), **case.params)) * weight).sum()

    with tg.Tape() as tape:
        eager_loss = loss()
    tape.backward(eager_loss)
    eager = [x.grad for x in leaves]
    # python makes the eager kernels (bit for bit); inductor's capture (make_fx, its compile stood in for: a C++
    # build per primitive is too slow here) rewrites updates, to rounding, on each primitive's first example
    executors: list[tuple[str, dict]] = [("python", {"rtol": 0, "atol": 0})]
    if name not in CAPTURED:
        CAPTURED.add(name)
        executors.append(("inductor", {}))
    for executor, tol in executors:
        step = tg.trace(loss, check=False, executor=executor)
        # the walk; then the executor: inductor compiles, checks its first replay, replays
        for call in ("traced", "compiled", "checked", "replayed"):
            for x in leaves:
                x.grad = None
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(replay_inductor, "_compiled", lambda gm, inputs, cpp: gm)
                traced_loss = step()
            what = f"{name}, {executor}, {call}"
            torch.testing.assert_close(traced_loss.data, eager_loss.data, **tol, msg=lambda m, w=what: f"{w} loss: {m}")
            for i, (x, e) in enumerate(zip(leaves, eager)):
                assert (x.grad is None) == (e is None), f"{what}: gradient {i} present in one path only"
                if e is not None:
                    where = f"{what}, input {i}"
                    torch.testing.assert_close(x.grad.data, e.data, **tol, msg=lambda m, w=where: f"{w}: {m}")
        assert step.traces == 1
        (entry,) = step._entries.values()
        if executor == "inductor" and name in BRANCHES_ON_VALUES:
            assert entry.refused and "inductor cannot compile it" in entry.why, name
        elif executor == "inductor":  # the graph ran compiled (a decline or a refusal would warn and run Python)
            assert entry.checked and not entry.refused, f"{name}: inductor declined or refused"


def rule(prim: tg.Primitive, fast: bool, i: int, *args, **params):
    vjps, vjp = (prim.fast_vjps, prim.fast_vjp) if fast else (prim.vjps, prim.vjp)
    return vjps[i](*args, **params) if vjps is not None else vjp(*args, **params)[i]


def test_the_fused_ops_have_fast_rules():
    assert {"relu", "mse_loss"} <= set(FAST)


@pytest.mark.parametrize("name", FAST)
@SETTINGS
@given(data=st.data())
def test_fast_vjp_agrees_with_the_reference_vjp(name, data):
    prim = PRIMITIVES[name]
    case = data.draw(SPECS[name], label="case")
    seed = data.draw(seeds, label="seed")
    out = prim.forward(*case.args, **case.params)
    outs = out if prim.multi else (out,)  # a multi-output primitive's rules get a tuple: a cotangent per output
    gs = tuple(upstream(o.shape, seed + k).to(o.dtype) for k, o in enumerate(outs))
    g = gs if prim.multi else gs[0]
    wrapped = [tg.Tensor(a) if isinstance(a, torch.Tensor) else a for a in case.args]

    def tg_tensors(value):
        return tuple(map(tg.Tensor, value)) if prim.multi else tg.Tensor(value)

    for i in case.differentiable():
        g_saved = [gk.clone() for gk in gs]
        fast = rule(prim, True, i, g, out, *case.args, **case.params)
        assert all(map(torch.equal, gs, g_saved)), f"the fast VJP of {name} mutated the upstream gradient"
        with tg.Tape() as tape:  # the reference rule on tg.Tensors, as a higher-order replay runs it
            tape.watch(*(a for a in wrapped if isinstance(a, tg.Tensor) and a.is_floating_point()))
            ref = rule(prim, False, i, tg_tensors(g), tg_tensors(out), *wrapped, **case.params)
        where = f"{name}, input {i}"
        torch.testing.assert_close(fast, ref.data, msg=lambda m, w=where: f"{w}: {m}")


def test_anomaly_mode_names_the_rule_that_ran():
    bad_reference = tg.primitive(
        "test_registry_half_fast",
        torch.exp,
        [lambda g, out, x: g * out * math.nan],
        fast_vjp=[lambda g, out, x: g * out],
    )
    x = tg.tensor([0.5], requires_grad=True)
    with tg.Tape() as tape:
        y = bad_reference(x).sum()
    assert torch.isfinite(tape.gradient(y, x).data).all()  # first order ran the fast rule
    with tg.detect_anomaly(), tg.Tape() as tape:
        y = bad_reference(x).sum()
        with pytest.raises(tg.AnomalyError, match=r"inside the VJP of test_registry_half_fast\) produced NaN"):
            tape.gradient(y, x)  # anomaly mode replays the reference rule, and names it


bad_shape = tg.primitive("test_registry_bad_shape", torch.exp, [lambda g, out, x: g.sum()])
no_vjp = tg.primitive("test_registry_no_vjp", torch.exp, None)


@pytest.mark.parametrize("prim", [bad_shape, no_vjp], ids=["wrong shape", "no VJP"])
def test_a_faulty_rule_raises_the_same_error_eager_and_traced(prim):
    x = tg.tensor([0.5, 1.0], requires_grad=True)

    def loss():
        return prim(x).sum()

    with tg.Tape() as tape:
        eager_loss = loss()
    with pytest.raises(tg.TapeError) as eager:
        tape.backward(eager_loss)
    with pytest.raises(tg.TapeError) as traced:
        tg.trace(loss)()
    site = re.compile(r"\S+\.py:\d+ in \S+")  # where backward was called differs; the rest may not
    assert type(traced.value) is type(eager.value)
    assert site.sub("<site>", str(traced.value)) == site.sub("<site>", str(eager.value))
    assert prim.name in str(eager.value)
