"""Per-thread recording state: the open tapes, the module scope, grad mode and anomaly mode.

Like torch's grad mode, each thread has its own: a tape opened in one thread records only that
thread's ops, and a `no_grad` in one thread never changes what another records. `current()`
returns the calling thread's `State`: the one way to reach it (the per-op hot paths read
`per_thread.state` inline, `current()` without the call). `suspended_tapes` is the context in
which no open tape records.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


per_thread = threading.local()
"""``per_thread.state`` is the calling thread's `State` once `current` made it (else AttributeError):
`current()` inlined, for the paths that run once per op::

    try:
        state = per_thread.state
    except AttributeError:
        state = current()
"""


def current() -> State:
    """The calling thread's recording state (created on first use in each thread)."""
    try:
        return per_thread.state
    except AttributeError:
        state = per_thread.state = State()
        return state


@contextmanager
def suspended_tapes() -> Iterator[State]:
    """A context in which no tape of this thread records: the open tapes are set aside, and open again
    after it (tapes opened inside it record as usual). Yields the thread's `State`."""
    state = current()
    outer, state.tapes = state.tapes, []
    try:
        yield state
    finally:
        state.tapes = outer
