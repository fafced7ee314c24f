"""A primitive's declaration checked and normalised: `tg.primitive`'s arguments, ``saves=``, the VJP forms."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["check_declaration", "saved_positions", "rule_forms", "takes_mask"]


def check_declaration(name: Any, forward: Any, vjp: Any, fast_vjp: Any, residuals: Any, unused: Any = "zeros") -> None:
    """`primitive`'s arguments checked: a clear TypeError for each wrong one."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"primitive: name must be a non-empty string, got {name!r:.40}")
    if not callable(forward):
        raise TypeError(
            f"primitive: forward of {name!r} must be callable, got {type(forward).__name__} {forward!r:.40}"
        )
    for what, rule in (("vjp", vjp), ("fast_vjp", fast_vjp)):
        if (
            rule is not None
            and not callable(rule)
            and not (isinstance(rule, (tuple, list)) and all(r is None or callable(r) for r in rule))
        ):
            raise TypeError(
                f"primitive: {what} of {name!r} must be a function, a sequence of per-input functions (or None), "
                f"or None, got {type(rule).__name__} {rule!r:.40}"
            )
    if residuals is not None and (not callable(residuals) or fast_vjp is None):
        raise TypeError(f"primitive: residuals of {name!r} must be a function, and they need a fast_vjp to read them")
    if unused not in ("zeros", "none"):
        raise ValueError(f"primitive {name!r}: unused_cotangents must be 'zeros' or 'none', got {unused!r}")


def saved_positions(name: str, saves: Sequence[int | str] | None) -> tuple[frozenset[int] | None, bool] | None:
    """``saves`` as (input positions, None for all inputs; whether the output is saved), checked."""
    if saves is None:
        return None
    if isinstance(saves, (str, int)):
        saves = (saves,)
    positions: set[int] = set()
    every = output = False
    for item in saves:
        if item == "output":
            output = True
        elif item == "inputs":
            every = True
        elif isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            positions.add(item)
        else:
            raise ValueError(
                f"primitive {name!r}: saves= takes input positions (ints >= 0), 'inputs' and 'output', got {item!r}"
            )
    return (None if every else frozenset(positions)), output


def rule_forms(rule: Callable | Sequence | None) -> tuple[Callable | None, tuple | None]:
    """(one function for all inputs, None) or (None, per-input functions) or (None, None)."""
    if rule is None:
        return None, None
    return (rule, None) if callable(rule) else (None, tuple(rule))


def takes_mask(rule: Callable | None) -> bool:
    """Whether a rule of all inputs names a keyword parameter ``needs_input_grad``: the walk then passes
    it which inputs it will use (torch's ``ctx.needs_input_grad``), so the rule may skip the others."""
    if rule is None:
        return False
    try:
        found = inspect.signature(rule).parameters.get("needs_input_grad")
    except (TypeError, ValueError):  # a callable without a signature Python can read
        return False
    return found is not None and found.kind in (found.KEYWORD_ONLY, found.POSITIONAL_OR_KEYWORD)
