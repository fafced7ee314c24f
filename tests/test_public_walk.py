"""Every public callable of tapegrad, called with None, a string or a wrong-shaped tensor in each
positional argument, either works or raises an error that names it: no bare Python or torch
message. The walk reads `tapegrad.__all__`, so ops other helpers add are covered as they land."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

import tapegrad as tg

BAD = {"None": lambda: None, "a string": lambda: "a", "a wrong-shaped tensor": lambda: tg.tensor(torch.ones(3, 5, 7))}
SKIP = {"Record", "Primitive"}  # plain data / the registry's class: built by the library, not by users


def _good():
    return tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)


def _public():
    for name in sorted(set(tg.__all__) - SKIP):
        obj = getattr(tg, name)
        if not callable(obj) or (isinstance(obj, type) and issubclass(obj, BaseException)):
            continue
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        required = [
            p
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        yield name, obj, len(required)


CALLS = [(name, i, kind) for name, _, n in _public() for i in range(n) for kind in BAD]


def test_the_walk_covers_the_public_api():
    names = {name for name, _, _ in CALLS}
    assert {"cat", "max", "grad", "jvp", "checkpoint", "gradcheck", "tensor", "Tensor", "sort"} <= names
    assert len(names) > 100


@pytest.mark.parametrize(("name", "index", "kind"), CALLS, ids=[f"{n}[{i}]={k}" for n, i, k in CALLS])
def test_a_bad_positional_argument_gives_an_error_naming_the_function(name, index, kind):
    fn = getattr(tg, name)
    n = next(count for other, _, count in _public() if other == name)
    args = [_good() for _ in range(n)]
    args[index] = BAD[kind]()
    try:
        with warnings.catch_warnings(), tg.Tape():
            warnings.simplefilter("ignore")
            fn(*args)
    except Exception as err:  # noqa: BLE001  (any error is fine, as long as it names the function)
        assert name in str(err), f"{name}({kind} as argument {index}) raised {type(err).__name__}: {err}"
