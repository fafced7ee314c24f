"""How `viz.explain` shows a VJP rule: a lambda's own expression, or a rule's name and docstring."""

from __future__ import annotations

import inspect
import linecache
import os
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["binding", "rule_text", "source_expression"]


def binding(fn: Callable, values: Sequence[str]) -> str:
    """'g = dL/dc, out = c, x = b, y = 3': the names of the rule's arguments, bound to ``values``."""
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    except (TypeError, ValueError):
        return ""
    return ", ".join(f"{n} = {v}" for n, v in zip(names, values))


def rule_text(fn: Callable) -> str:
    """A lambda's expression (``g * y``), else the rule's name and its docstring's first line; and where."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__name__", type(fn).__name__)
    where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    if fn.__name__ == "<lambda>":
        body = source_expression(code)
        if body:
            return f"{body}  ({where})"
    doc = (inspect.getdoc(fn) or "").split("\n")[0]
    if fn.__name__.startswith("_"):  # a private helper's name means nothing to a reader: its docstring
        return f"{doc or 'the VJP rule'}  ({where})"
    return f"{fn.__name__}{' - ' + doc if doc else ''}  ({where})"


def source_expression(code: Any) -> str:
    """The source text a code object's instructions cover (a lambda's body)."""
    spans = [p for p in code.co_positions() if None not in p and (p[0], p[2]) != (p[1], p[3])]
    if not spans:
        return ""
    start = min((p[0], p[2]) for p in spans)
    end = max((p[1], p[3]) for p in spans)
    lines = [linecache.getline(code.co_filename, n) for n in range(start[0], end[0] + 1)]
    if not all(lines):
        return ""
    if len(lines) == 1:
        return lines[0][start[1] : end[1]]
    text = lines[0][start[1] :] + "".join(lines[1:-1]) + lines[-1][: end[1]]
    return " ".join(text.split())
