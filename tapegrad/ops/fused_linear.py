"""A chain of linear layers, each followed by a pointwise activation or none, as ONE record.

``linear_chain(x, w1, b1, ..., wn, bn, activations=("relu", ..., "tanh"))`` is what
``nn.Sequential(..., fuse=True)`` records for a run of `Linear` layers and the activations between
them (a bias may be None; an activation None is a layer without one). Its forward runs linear's and
each activation's own forward, in order; its fast rule runs their own fast rules' kernels, in the
order the per-layer records' rules run them, so the output and every gradient are those of the
per-layer records bit for bit. It saves what they save together: the inputs and the output, and
as forward residuals the activations between the layers (what each weight gradient and each
activation's rule read); not the pre-activations. A record made without the residuals (`tg.trace`'s
tapes) recomputes them. The reference rule is written in tapegrad ops (higher order).

An activation qualifies when its rules read its output only (relu, tanh, sigmoid): then the layer
keeps one tensor, as the two records did.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.primitives import Primitive, primitive
from . import _recycle
from .elementwise import relu, sigmoid, tanh
from .linalg import _ATEN_LINEAR, linear

__all__: list[str] = []  # reached through nn.Sequential(fuse=True), by name through the registry

# the activations a chain may hold: unary primitives whose rules read their output only
ACTIVATIONS: dict[str, Primitive] = {p.name: p for p in (relu, tanh, sigmoid)}
assert all(p.saves == (frozenset(), True) and p.fast_vjps is not None for p in ACTIVATIONS.values())
_FORWARD = {name: p.forward for name, p in ACTIVATIONS.items()}
_FAST = {name: p.fast_vjps[0] for name, p in ACTIVATIONS.items()}  # type: ignore[index]
_REFERENCE = {name: p.vjps[0] for name, p in ACTIVATIONS.items()}  # type: ignore[index]
assert linear.vjps is not None and linear.fast_vjps is not None
_LIN_GX, _LIN_GW, _LIN_GB = linear.fast_vjps
_RECYCLED_FROM = _recycle._MIN_BYTES  # the bytes from which `_recycle.mm` reuses a buffer
_REF_GX, _REF_GW, _REF_GB = linear.vjps


def _checked(wb: tuple, activations: Any) -> None:
    """The layout checked once per (number of tensors, activations): a TypeError naming what is wrong."""
    if (len(wb), activations) in _LAYOUTS:
        return
    if not isinstance(activations, tuple) or not activations or len(wb) != 2 * len(activations):
        raise TypeError(
            f"takes x and a (weight, bias or None) pair per layer, and activations= a non-empty tuple with one "
            f"entry per layer; got {len(wb)} tensors after x and activations={activations!r}"
        )
    for act in activations:
        if act is not None and act not in _FORWARD:
            raise TypeError(f"activations holds {act!r}; each is one of {sorted(_FORWARD)} or None")
    _LAYOUTS.add((len(wb), activations))


_LAYOUTS: set[tuple[int, tuple]] = set()


def _layers(x: torch.Tensor, wb: tuple, activations: tuple[str | None, ...], kept: list | None) -> torch.Tensor:
    """The forward (linear's, aten's linear, then each activation's); each layer's input appended to
    ``kept`` if given."""
    _checked(wb, activations)
    pairs = iter(wb)
    for w, b, act in zip(pairs, pairs, activations):
        if kept is not None:
            kept.append(x)
        x = _ATEN_LINEAR(x, w, b)
        if act is not None:
            x = _FORWARD[act](x)
    return x


def _forward(x: torch.Tensor, *wb: Any, activations: tuple[str | None, ...]) -> torch.Tensor:
    return _layers(x, wb, activations, None)


def _residuals(x: torch.Tensor, *wb: Any, activations: tuple[str | None, ...]) -> tuple[torch.Tensor, list]:
    """The forward, and each layer's output but the last (the next layer's input): what the rule reads."""
    kept: list[torch.Tensor] = []
    out = _layers(x, wb, activations, kept)
    return out, kept[1:]


def _fast(g: Any, out: Any, x: Any, *rest: Any, activations: tuple[str | None, ...]) -> tuple:
    """The per-layer records' fast rules, last layer first, on the saved layer outputs (``rest`` after the
    weights and biases; recomputed when the record has none)."""
    n2 = 2 * len(activations)
    ins = (x, *rest[n2:]) if len(rest) > n2 or n2 == 2 else (x, *_residuals(x, *rest, activations=activations)[1])
    grads: list[Any] = [None] * (n2 + 1)
    flat = x.ndim == 2
    size = x.element_size()
    a = out  # the output of the layer being undone
    for k in range(n2 // 2 - 1, -1, -1):
        act = activations[k]
        if act is not None:
            g = _FAST[act](g, a, None)
        w, b, a = rest[2 * k], rest[2 * k + 1], ins[k]
        if flat and (b is None or b.ndim == 1):
            # linear's fast rules for an (N, in) batch, inlined (`_linear_weight_raw`, `g.sum(0)`, `g @ w`);
            # `_recycle.mm` is torch.mm for a product under its size, whose test is cheaper here
            gw = g.mT
            small = w.nelement() * size < _RECYCLED_FROM
            grads[2 * k + 1] = torch.mm(gw, a) if small else _recycle.mm(gw, a)
            if b is not None:
                grads[2 * k + 2] = g.sum(0)
            g = torch.mm(g, w)  # what `@` runs for 2-D operands, minus matmul's dispatch
        else:
            grads[2 * k + 1] = _LIN_GW(g, None, a, w, b)
            if b is not None:
                grads[2 * k + 2] = _LIN_GB(g, None, a, w, b)
            g = _LIN_GX(g, None, a, w, b)
    grads[0] = g
    return tuple(grads)


def _vjp(g: Any, out: Any, x: Any, *wb: Any, activations: tuple[str | None, ...]) -> tuple:
    """Back through each layer, last first: the activation's rule, then linear's (gᵀ input, Σ g, g weight).

    The reference rule, in tapegrad ops: the layer outputs recomputed by linear and the activations (so
    that an outer tape sees them depend on the inputs), then the per-layer reference rules."""
    n = len(activations)
    ins = [x]
    for k in range(n - 1):
        w, b = wb[2 * k], wb[2 * k + 1]
        z = linear(ins[-1], w) if b is None else linear(ins[-1], w, b)
        act = activations[k]
        ins.append(z if act is None else ACTIVATIONS[act](z))
    grads: list[Any] = [None] * (2 * n + 1)
    for k in range(n - 1, -1, -1):
        act = activations[k]
        if act is not None:
            g = _REFERENCE[act](g, out if k == n - 1 else ins[k + 1], None)
        w, b = wb[2 * k], wb[2 * k + 1]
        grads[2 * k + 1] = _REF_GW(g, None, ins[k], w, b)
        if b is not None:
            grads[2 * k + 2] = _REF_GB(g, None, ins[k], w, b)
        g = _REF_GX(g, None, ins[k], w, b)
    grads[0] = g
    return tuple(grads)


linear_chain = primitive(
    "linear_chain",
    _forward,
    _vjp,
    "linear_chain(x, w1, b1, ..., wn, bn, activations): linear layers, each followed by its activation "
    "(relu, tanh, sigmoid or None), as one record (nn.Sequential(fuse=True)); the values and gradients of "
    "the per-layer ops, bit for bit.",
    fast_vjp=_fast,
    saves=("inputs", "output"),
    residuals=_residuals,
)
