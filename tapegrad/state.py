"""Process-wide recording state: the open tapes, the module scope, no_grad and anomaly flags."""

from __future__ import annotations

from typing import Any


class Scope:
    """One level of module nesting, as `nn.Module.__call__` opens it: path '0', type 'Linear'."""

    __slots__ = ("parent", "name", "module")

    def __init__(self, parent: Scope | None, name: str, module: Any = None) -> None:
        self.parent = parent
        self.name = name
        self.module = module

    @property
    def path(self) -> str:
        """The dotted path from the root: '0', 'encoder.0' (computed on demand: scopes are hot)."""
        parent = self.parent
        if parent is None:
            return self.name
        above = parent.path
        return f"{above}.{self.name}" if above else self.name

    @property
    def type_name(self) -> str:
        """The class name of the module that opened this scope ('' for a plain name scope)."""
        return "" if self.module is None else type(self.module).__name__

    def __repr__(self) -> str:
        kind = self.type_name
        if not kind:
            return self.path
        return f"{self.path} ({kind})" if self.path else kind


class State:
    """Mutable globals of the recorder; one instance, `STATE`."""

    __slots__ = ("tapes", "scope", "grad_enabled", "anomaly")

    def __init__(self) -> None:
        self.tapes: list = []  # tapes that record now, outermost first
        self.scope: Scope | None = None
        self.grad_enabled = True
        self.anomaly = False


STATE = State()
