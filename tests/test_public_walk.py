"""Every public callable of tapegrad (and the methods of tg.Tensor, tg.Tape, the nn layers as called,
the optimizers and the schedules), called with None, a string or a wrong-shaped tensor in each
positional argument, either works or raises an error that names it: no bare Python or torch
message. The walk reads `tapegrad.__all__`, so ops other helpers add are covered as they land."""

from __future__ import annotations

import functools
import inspect
import warnings

import pytest
import torch

import nn
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


# --- methods: tg.Tensor's and tg.Tape's, nn layers called as users call them, optimizers, schedules ---
def _methods(cls: type) -> list[str]:
    return sorted(n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n, None)))


def _tape() -> tg.Tape:
    x = _good()
    with tg.Tape(persistent=True) as tape:
        (x * x).sum()
    return tape


# constructor arguments of the layers that need some (a new layer without a row here fails below)
LAYER_ARGS = {
    "Linear": (2, 2), "Conv2d": (2, 2, 1), "Conv1d": (2, 2, 1), "ConvTranspose2d": (2, 2, 1), "Embedding": (4, 2),
    "LayerNorm": (2,), "BatchNorm1d": (2,), "BatchNorm2d": (2,), "GroupNorm": (1, 2), "RMSNorm": (2,),
    "MultiheadAttention": (2, 1), "TransformerEncoderLayer": (2, 1), "RNN": (2, 2), "GRU": (2, 2), "LSTM": (2, 2),
    "RNNCell": (2, 2), "GRUCell": (2, 2), "LSTMCell": (2, 2), "MaxPool2d": (2,), "AvgPool2d": (2,),
    "Upsample": (None, 2), "UpsamplingNearest2d": (None, 2), "UpsamplingBilinear2d": (None, 2),
    "Unflatten": (1, (2, 1)), "Softmax": (1,), "LogSoftmax": (1,),
}  # fmt: skip
SCHEDULE_ARGS = {"StepLR": (1,), "ExponentialLR": (0.9,), "LambdaLR": (lambda epoch: 1.0,), "CosineAnnealingLR": (2,)}
NOT_WALKED = {
    "Tape.record",  # called by every primitive with the arguments it builds, not by users
}


def _layer(name: str) -> nn.Module:
    cls = getattr(nn, name)
    return cls(nn.TransformerEncoderLayer(2, 1), 1) if name == "TransformerEncoder" else cls(*LAYER_ARGS.get(name, ()))


def _schedule(cls: type, args: tuple) -> object:
    return cls(nn.SGD(nn.Linear(2, 2).parameters(), lr=0.1), *args)


def _owners() -> dict[str, tuple]:
    """name -> (make an instance, the methods to call, the names an error may give)."""
    layers = [n for n in nn.__all__ if isinstance(getattr(nn, n), type) and issubclass(getattr(nn, n), nn.Module)]
    scope_names = [f"({n})" for n in layers]
    owners: dict[str, tuple] = {"Tensor": (_good, _methods(tg.Tensor), []), "Tape": (_tape, _methods(tg.Tape), [])}
    for name in layers:
        if name not in ("Module", "RNNBase"):  # the bases users subclass
            owners[name] = (lambda name=name: _layer(name), ["__call__"], [getattr(nn, name).__name__, *scope_names])
    for name in nn.__all__:
        cls = getattr(nn, name)
        if isinstance(cls, type) and issubclass(cls, nn.Optimizer) and cls is not nn.Optimizer:
            owners[name] = (lambda cls=cls: cls(nn.Linear(2, 2).parameters(), lr=0.1), _methods(cls), [name])
        elif isinstance(cls, type) and issubclass(cls, nn.LRScheduler) and cls is not nn.LRScheduler:
            make = functools.partial(_schedule, cls, SCHEDULE_ARGS.get(name, ()))
            owners[name] = (make, _methods(cls), [name])
    return owners


OWNERS = _owners()


def _required(fn) -> int:
    params = inspect.signature(fn).parameters.values()
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


def test_the_method_walk_covers_tensors_tapes_layers_optimizers_and_schedules():
    assert {"Tensor", "Tape", "Linear", "Conv2d", "GRU", "MultiheadAttention", "SGD", "Adam", "StepLR"} <= set(OWNERS)
    assert {"reshape", "sum", "topk"} <= set(OWNERS["Tensor"][1]) and "gradient" in OWNERS["Tape"][1]
    for make, _, _ in OWNERS.values():
        make()  # every layer and schedule of nn.__all__ can be built from the tables above


@pytest.mark.parametrize("owner", sorted(OWNERS))
def test_a_bad_positional_argument_to_a_method_gives_an_error_naming_it(owner):
    make, methods, names = OWNERS[owner]
    failures = []
    for method in methods:
        if f"{owner}.{method}" in NOT_WALKED:
            continue
        probe = make()
        target = probe.forward if method == "__call__" else getattr(probe, method)
        try:
            n = _required(target)
        except (TypeError, ValueError):  # builtins without a signature
            continue
        expected = [*names, method, getattr(getattr(type(probe), method, None), "__name__", method)]
        for index in range(n):
            for kind, bad in BAD.items():
                args = [_good() for _ in range(n)]
                args[index] = bad()
                try:
                    with warnings.catch_warnings(), tg.Tape():
                        warnings.simplefilter("ignore")
                        getattr(make(), method)(*args)
                except Exception as err:  # noqa: BLE001  (any error is fine, as long as it names the method)
                    if not any(e in str(err) for e in expected if e != "__call__"):
                        failures.append(f"{owner}.{method}({kind} as argument {index}): {type(err).__name__}: {err}")
    assert not failures, "\n".join(failures)
