"""Per-thread recording state: the open tapes, the module scope, grad mode and anomaly mode.

Like torch's grad mode, each thread has its own: a tape opened in one thread records only that
thread's ops, and a `no_grad` in one thread never changes what another records. `current()`
returns the calling thread's `State`; hot paths fetch it once per op.
"""

from __future__ import annotations

import threading
from typing import Any


class Scope:
    """One level of module nesting, as `nn.Module.__call__` opens it: path '0', type 'Linear'.

    ``site`` is the user's call site (an `errors.call_site_key` key) shared by every op run inside
    a library module's call: the library's own code sits between them and the user's line, so
    `Tape.record` takes it from here instead of walking the stack once per op. ``None`` (a name
    scope, a module class of the user's) means each record finds its own.
    """

    __slots__ = ("parent", "name", "module", "site")

    def __init__(self, parent: Scope | None, name: str, module: Any = None, site: Any = None) -> None:
        self.parent = parent
        self.name = name
        self.module = module
        self.site = site

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
    """The recording state of one thread (see `current`)."""

    __slots__ = ("tapes", "scope", "grad_enabled", "anomaly", "replaying", "last_tape")

    def __init__(self) -> None:
        self.tapes: list = []  # tapes that record now, outermost first
        self.scope: Scope | None = None
        self.grad_enabled = True
        self.anomaly = False
        self.replaying: Any = None  # the record whose VJP the innermost replay runs (anomaly messages)
        self.last_tape: Any = None  # the tape closed last, kept alive for `loss.backward()`

    @property
    def recording(self) -> bool:
        """Whether an op run now goes on a tape (grad mode on and a tape open)."""
        return self.grad_enabled and bool(self.tapes)


_LOCAL = threading.local()  # `.state`: hot paths read it inline (try/except AttributeError -> current())


def current() -> State:
    """The calling thread's recording state (created on first use in each thread)."""
    try:
        return _LOCAL.state
    except AttributeError:
        state = _LOCAL.state = State()
        return state


class _CurrentState:
    """`STATE`: reads and writes go to the calling thread's `State` (for code that is not hot)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(current(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(current(), name, value)

    def __repr__(self) -> str:
        state = current()
        return f"<recording state of this thread: {len(state.tapes)} tapes, grad_enabled={state.grad_enabled}>"


STATE: Any = _CurrentState()
