"""The replay half of `tg.Tape`: `gradient` and `backward` walk the records in reverse (`walk`).

`Tape` (engine/tape.py) records; this mixin replays: it checks the call, seeds the walk, runs it
with the tape set aside (a tape never records its own replay) and releases a one-shot tape after
its first successful replay.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal, overload

import torch

from .errors import TapeError, call_site, describe_tensor
from .hooks import HOOKS, has_hooks, run_hooks
from .primitives import Record
from .release import sweep
from .state import current
from .tensors import Tensor, wrap
from .walk import Listener, first_consumers, leading_to, seed, walk
from .walk_checks import check_recorded

__all__ = ["Replay"]

_get_ident = threading.get_ident
_new = object.__new__


class Replay:
    """`Tape`'s replay: `gradient`, `backward` and the checks and release around them."""

    persistent: bool
    _records: list[Record] | None
    _unsaved: dict[int, list[Any]] | None
    _owner: int | None
    _depth: int
    _watched: set[int]
    _watched_refs: list[Tensor]

    # The return type follows the arguments: one source gives one tensor, a sequence a tuple;
    # only allow_unused=True lets a gradient be None.
    @overload
    def gradient(
        self, target: Tensor, sources: Tensor, grad_output: Tensor | None = ..., allow_unused: Literal[False] = ...
    ) -> Tensor: ...
    @overload
    def gradient(
        self, target: Tensor, sources: Tensor, grad_output: Tensor | None = ..., allow_unused: bool = ...
    ) -> Tensor | None: ...
    @overload
    def gradient(
        self,
        target: Tensor,
        sources: Sequence[Tensor],
        grad_output: Tensor | None = ...,
        allow_unused: Literal[False] = ...,
    ) -> tuple[Tensor, ...]: ...
    @overload
    def gradient(
        self, target: Tensor, sources: Sequence[Tensor], grad_output: Tensor | None = ..., allow_unused: bool = ...
    ) -> tuple[Tensor | None, ...]: ...
    def gradient(
        self,
        target: Tensor,
        sources: Tensor | Sequence[Tensor],
        grad_output: Tensor | None = None,
        allow_unused: bool = False,
    ) -> Tensor | tuple[Tensor | None, ...] | None:
        """Gradients of ``target`` with respect to ``sources``: one tensor, or a tuple for a sequence.

        A non-scalar target needs ``grad_output`` (the vector of the vector-Jacobian product).
        A source the target does not depend on raises `TapeError` unless ``allow_unused``, which
        returns ``None`` for it; the tape is then still usable (a one-shot tape is released only
        by a gradient that succeeds). Computed with tapegrad ops: an outer open tape records them.
        """
        single = isinstance(sources, Tensor)
        if not single and not isinstance(sources, (tuple, list)):
            raise TapeError(
                f"gradient: sources must be a tg.Tensor or a sequence of them, got {type(sources).__name__} "
                f"(called at {call_site()})"
            )
        if grad_output is not None and not isinstance(grad_output, (Tensor, torch.Tensor)):
            raise TypeError(
                f"gradient: grad_output must be a tensor of the target's shape (or None), got "
                f"{type(grad_output).__name__} {grad_output!r:.40} (called at {call_site()})"
            )
        srcs: tuple[Tensor, ...] = (sources,) if isinstance(sources, Tensor) else tuple(sources)
        for i, s in enumerate(srcs):
            if not isinstance(s, Tensor) or not s.data.is_floating_point():
                what = type(s).__name__ if not isinstance(s, Tensor) else f"a {s.dtype} tensor"
                raise TapeError(
                    f"gradient: source {i} is {what}; gradients exist only for float tg.Tensors "
                    f"(called at {call_site()})"
                )
        records = self._check_usable("gradient")
        if not allow_unused and isinstance(target, Tensor):
            kept = leading_to(records, (target,))
            if not kept and not any(s is target for s in srcs):
                check_recorded(records, target)
            reached = {id(target)} | {id(a) for r in kept for a in r.inputs}
            for i, s in enumerate(srcs):
                if id(s) not in reached:
                    raise _unused(i, s)
        grads, raw = self._replay(target, grad_output, srcs)
        result = []
        for i, s in enumerate(srcs):
            g = grads.get(id(s), (None, None))[1]
            if g is None and not allow_unused:
                raise _unused(i, s)
            result.append(wrap(g) if raw and g is not None else g)
        return result[0] if single else tuple(result)

    def backward(self, target: Tensor, grad_output: Tensor | None = None) -> None:
        """Accumulate the gradient of ``target`` into ``.grad`` of the leaves that require grad.

        A leaf's post-accumulate-grad hooks (`Tensor.register_post_accumulate_grad_hook`) run as
        soon as its gradient is final: right after the walk replayed the first record that read it.
        """
        at = first_consumers(self._check_usable("backward"), _hooked_leaf) if HOOKS else None
        grads, raw = self._replay(target, grad_output, None, ready_at=at or None, what="backward")
        for leaf, g in grads.values():  # `_accumulate`, inlined: it runs for every parameter
            if raw:  # tensor.wrap, inlined
                t = _new(Tensor)
                t.data, t.grad, t.requires_grad, t._tape = g, None, False, None
                g = t
            prev = leaf.grad
            leaf.grad = g if prev is None else prev + g
            if HOOKS and id(leaf) in HOOKS:
                run_hooks(leaf)

    def _release(self, state: Any = None) -> None:
        if state is None:
            state = current()
        if state.last_tape is self:
            state.last_tape = None
        self._records = None
        if self._unsaved is not None:
            self._unsaved = {}
        self._watched = set()
        self._watched_refs = []

    def _check_thread(self, what: str) -> None:
        owner = self._owner
        if owner is not None and owner != _get_ident():
            raise TapeError(
                f"Tape.{what}: this tape is open in another thread ({owner}); a tape records and replays "
                f"in the thread that opened it. Open one tape per thread (called at {call_site()})"
            )

    def _check_usable(self, what: str) -> list[Record]:
        if self._owner is not None:
            self._check_thread(what)
        if self._records is None:
            raise TapeError(_released_msg(what))
        return self._records

    def _replay(
        self,
        target: Tensor,
        grad_output: Any,
        sources: tuple[Tensor, ...] | None,
        ready_at: dict[int, list[Tensor]] | None = None,
        what: str = "gradient",
    ) -> tuple[dict[int, tuple[Tensor, Any]], bool]:
        """({id: (tensor, gradient)} for the sources, or for the leaves that require grad (None); raw).

        The gradients are raw torch when ``raw`` (first order), else `tg.Tensor` objects. The leaves
        in ``ready_at`` get their gradient accumulated (and their hooks run) as soon as it is final.
        """
        records = self._check_usable(what)
        if self._unsaved:  # what the forward no longer needs, before the walk allocates gradients
            sweep(self._unsaved)
        if not isinstance(target, Tensor):
            raise TapeError(
                f"{what}: the target must be a tg.Tensor, got {type(target).__name__} (called at {call_site()})"
            )
        state = current()
        was_open = self._depth > 0 and _remove(state.tapes, self)  # this tape never records its own replay
        n = len(records)
        try:
            # Higher order needs tg.Tensors so that open tapes record the VJPs; else raw torch.
            raw = not (state.tapes and state.grad_enabled) and not state.anomaly
            start = seed(target, grad_output, raw, what)
            listener = _Accumulator(raw, ready_at) if ready_at else None
            # A one-shot tape drops each record once replayed, so that memory is freed as it goes.
            grads = walk(
                records, target, start, raw=raw, sources=sources, consume=not self.persistent, listener=listener
            )
        finally:
            if was_open:
                state.tapes.append(self)
            if len(records) < n:  # consumed (a one-shot tape), or partly by a failed replay: unusable
                self._release(state)
        if not self.persistent and self._records is not None:  # a one-shot tape none of whose records ran
            self._release(state)
        return grads, raw


def _hooked_leaf(t: Tensor) -> bool:
    return t.requires_grad and has_hooks(t)


class _Accumulator(Listener):
    """The walk's listener in `Tape.backward` with hooks: a leaf's gradient goes into ``.grad`` (and
    its post-accumulate-grad hooks run) as soon as it is final, while the walk goes on."""

    def __init__(self, raw: bool, ready_at: dict[int, list[Tensor]]) -> None:
        self.raw = raw
        self.ready_at = ready_at

    def ready(self, leaf: Tensor, g: Any) -> None:
        """Accumulate ``g`` into ``leaf.grad`` and run the leaf's hooks."""
        g = wrap(g) if self.raw else g
        prev = leaf.grad
        leaf.grad = g if prev is None else prev + g
        if has_hooks(leaf):
            run_hooks(leaf)


def _unused(i: int, s: Tensor) -> TapeError:
    return TapeError(
        f"gradient: source {i} {describe_tensor(s.data)} was not used to compute the target "
        f"on this tape (pass allow_unused=True to get None for it; called at {call_site()})"
    )


def _released_msg(what: str) -> str:
    action = "record on this tape again" if what == "record on" else f"call Tape.{what}"
    return (
        f"cannot {action}: it is a one-shot tape (persistent=False) and released its records after its "
        f"first gradient; use tg.Tape(persistent=True) to replay it more than once (called at {call_site()})"
    )


def _remove(tapes: list, tape: Any) -> bool:
    for i in range(len(tapes) - 1, -1, -1):
        if tapes[i] is tape:
            del tapes[i]
            return True
    return False
