"""Linear primitives declared with their adjoint, the one mechanism behind the rearrangement tables.

A linear op's VJP is its adjoint: for ``flip``, ``tril`` or ``roll`` the op itself (roll with the
opposite shifts), for ``diagonal`` or ``avg_pool2d`` a partner op that puts the gradient back into
the input's shape (``diagonal_scatter``, ``avg_pool2d_backward``), whose own VJP is the op again.
Both are primitives, so every order of gradient stays on the tape. Nothing is saved: a linear
map's VJP reads only the input's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine.primitives import Primitive, primitive

__all__ = ["adjoint_pair", "self_adjoint"]


def self_adjoint(
    name: str, forward: Callable, doc: str, adjoint: Callable[..., dict[str, Any]] | None = None
) -> Primitive:
    """Declare ``name`` whose VJP is the same op on the gradient: with the same params, or with those
    ``adjoint(**params)`` returns (roll's opposite shifts)."""

    def vjp(g: Any, out: Any, x: Any, **params: Any) -> Any:
        return op(g, **(params if adjoint is None else adjoint(**params)))

    vjp.__name__, vjp.__doc__ = f"{name}_vjp", f"{name} of the gradient (its own adjoint)."
    op = primitive(name, forward, [vjp], doc, saves=())
    return op


def adjoint_pair(
    name: str, forward: Callable, doc: str, back_name: str, back: Callable, back_doc: str
) -> tuple[Primitive, Primitive]:
    """Declare ``name``, ``forward(x, **params)``, and its adjoint ``back_name``, ``back(g, shape, **params)``
    (``shape``: the op's input shape): each is the other's VJP."""

    def vjp(g: Any, out: Any, x: Any, **params: Any) -> Any:
        return adjoint(g, shape=tuple(x.shape), **params)

    def back_vjp(gg: Any, out: Any, g: Any, shape: Any, **params: Any) -> Any:
        return op(gg, **params)

    vjp.__name__, vjp.__doc__ = f"{name}_vjp", f"{back_name} of the gradient, in the input's shape."
    back_vjp.__name__, back_vjp.__doc__ = f"{back_name}_vjp", f"{name} of the gradient (the adjoint's adjoint)."
    op = primitive(name, forward, [vjp], doc, saves=())
    adjoint = primitive(back_name, back, [back_vjp], back_doc, saves=())
    return op, adjoint
