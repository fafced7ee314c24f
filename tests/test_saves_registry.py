"""Every built-in primitive declares ``saves=``, and its VJP rules read nothing it leaves out.

Registry-driven: each primitive is recorded on its input spec, the tensors its declaration does
not keep are poisoned (tests/poison.py), and both rules (the first-order fast path on raw torch and
the reference rules under an open tape) must give the gradients of an unpoisoned replay, bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_specs import SPECS
from op_specs_multi import flat_out
from poison import gradients, same, unsaved
from strategies import seeds, upstream

import nn  # noqa: F401  (registers nn's own primitives)
import tapegrad as tg
from tapegrad.transforms.checkpointing import _CHECKPOINT

PRIMITIVES = tg.registered_primitives()
BUILTIN = sorted(n for n, p in PRIMITIVES.items() if p.origin.startswith(("tapegrad.", "nn.")))


def test_every_builtin_primitive_declares_what_it_saves():
    missing = sorted(n for n in BUILTIN if PRIMITIVES[n].saves is None)
    assert not missing, f"declare saves= for: {missing}"
    assert _CHECKPOINT.saves == (None, True)  # a checkpoint keeps its inputs, and its output to check the rerun


@pytest.mark.parametrize("name", [n for n in BUILTIN if n in SPECS])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_vjp_reads_only_what_is_saved(name, data):
    prim = PRIMITIVES[name]
    case = data.draw(SPECS[name], label="case")
    out = flat_out(prim.forward(*case.args, **case.params))
    g = upstream(out.shape, data.draw(seeds, label="seed")).to(out.dtype)
    poison = unsaved(prim, case.args)
    for higher in (False, True):
        clean = gradients(prim, case.args, case.params, g, set(), higher)
        got = gradients(prim, case.args, case.params, g, poison, higher)
        assert same(clean, got), f"{name}: a VJP rule reads one of {sorted(poison, key=str)} (higher={higher})"


def test_the_poison_check_catches_an_undeclared_read():
    liar = tg.primitive("test_saves_liar", torch.exp, [lambda g, out, x: g * out], saves=(0,))  # reads out
    x = torch.tensor([0.5, 1.0], dtype=torch.float64)
    g = torch.ones(2, dtype=torch.float64)
    clean = gradients(liar, (x,), {}, g, set(), False)
    assert not same(clean, gradients(liar, (x,), {}, g, unsaved(liar, (x,)), False))
