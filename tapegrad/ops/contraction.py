"""einsum: one primitive on explicit subscripts, whose VJP for each operand is another einsum.

The front end makes the equation explicit (ellipses become letters, the implicit output is
written out) and takes repeated subscripts of one operand (``"ii->i"``) as `diagonal`s first, so
the primitive only sees operands with distinct subscripts; its VJPs are then plain einsums, plus
a broadcast for letters the operand alone sums over and a ``sum_to`` for its size-1 dimensions.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import Primitive, primitive
from ..engine.tensors import Tensor
from ._operands import promote, raw
from .shape import reshape
from .structure import diagonal

__all__ = ["einsum"]


def _vjps(g: Any, out: Any, *xs: Any, equation: str) -> list[Any]:
    inputs, output = equation.split("->")
    subs = inputs.split(",")
    grads = []
    for i, (x, s) in enumerate(zip(xs, subs)):
        others = [(xs[j], subs[j]) for j in range(len(xs)) if j != i]
        seen = set(output).union(*(t for _, t in others))
        kept = "".join(c for c in s if c in seen)
        eq = ",".join([output, *(t for _, t in others)]) + "->" + kept
        grad = _einsum(g, *(o for o, _ in others), equation=eq)
        sizes = dict(zip(kept, grad.shape))
        interim = tuple(sizes.get(c, 1) for c in s)
        grad = reshape(grad, interim) if tuple(grad.shape) != interim else grad
        summed = tuple(1 if n == 1 else m for n, m in zip(x.shape, interim))
        if summed != interim:  # x's size-1 dimensions were broadcast
            grad = grad.sum_to_size(summed)
        if tuple(grad.shape) != tuple(x.shape):  # letters only x had: summed in the forward, spread back
            grad = grad.expand(x.shape)
        grads.append(grad)
    return grads


_einsum: Primitive = primitive(
    "einsum",
    lambda *xs, equation: torch.einsum(equation, *xs),
    _vjps,
    "einsum(*xs, equation): torch.einsum on explicit subscripts, each distinct within an operand.",
    saves=("inputs",),
)


def _explicit(equation: str, ranks: Sequence[int]) -> tuple[list[str], str]:
    """The input subscripts and the output, ellipses spelled out in letters the equation does not use."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    subs = lhs.split(",")
    if len(subs) != len(ranks):
        raise ShapeError(f"einsum: {equation!r} names {len(subs)} operands, got {len(ranks)} (called at {call_site()})")
    free = [c for c in string.ascii_letters if c not in eq]
    width = max((r - len(s.replace("...", "")) for s, r in zip(subs, ranks) if "..." in s), default=0)
    dots = "".join(free[:width])
    subs = [
        s.replace("...", dots[width - (r - len(s.replace("...", ""))) :]) if "..." in s else s
        for s, r in zip(subs, ranks)
    ]
    if arrow:
        out = rhs.replace("...", dots)
    else:  # torch's implicit output: the ellipsis dimensions, then the letters used once, sorted
        letters = "".join(subs)
        out = dots + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in dots))
    for s, r in zip(subs, ranks):
        if len(s) != r:
            raise ShapeError(f"einsum: subscripts {s!r} do not match an operand with {r} dimensions in {equation!r}")
    return subs, out


def _distinct(x: Any, s: str) -> tuple[Any, str]:
    """x with each repeated subscript taken as a diagonal (moved last), and its new subscripts."""
    while len(set(s)) < len(s):
        c = next(c for c in s if s.count(c) > 1)
        first, second = s.index(c), s.index(c, s.index(c) + 1)
        x = diagonal(x, 0, first, second)
        s = s[:first] + s[first + 1 : second] + s[second + 1 :] + c
    return x, s


def einsum(equation: str, *operands: Any) -> Any:
    """Sums of products over the subscripts of ``equation``, as torch.einsum (ellipses, implicit
    output, repeated subscripts, broadcasting); operands as arguments or one list."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    subs, out = _explicit(equation, [raw(x).dim() for x in operands])
    xs = list(operands)
    if any(isinstance(x, Tensor) for x in xs) and len({raw(x).dtype for x in xs}) > 1:
        xs = promote(xs)
    pairs = [_distinct(x, s) for x, s in zip(xs, subs)]
    explicit = ",".join(s for _, s in pairs) + "->" + out
    return _einsum(*(x for x, _ in pairs), equation=explicit)
