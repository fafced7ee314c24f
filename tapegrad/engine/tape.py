"""`tg.Tape`: records primitives while open and replays them in reverse to get gradients."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, overload

import torch

from .errors import TapeError, call_site, call_site_key, describe_tensor
from .hooks import HOOKS, has_hooks, run_hooks
from .primitives import Record
from .release import sweep
from .state import Scope, current
from .tensors import Tensor, wrap
from .walk import Listener, first_consumers, leading_to, seed, walk
from .walk_checks import check_recorded

__all__ = ["Tape", "no_grad", "enable_grad", "detect_anomaly", "scope", "tape_of"]

_get_ident = threading.get_ident
_SWEEP_MIN = 32  # candidates a tape collects before it first looks for ones only it holds
_new = object.__new__


class Tape:
    """Records every primitive whose inputs depend on a watched tensor while the tape is open.

    Tensors with ``requires_grad=True`` are watched automatically; `watch` adds others. Tapes
    nest: a record goes on every open tape that watches its inputs. A one-shot tape
    (``persistent=False``) releases its records after the first successful `gradient` or
    `backward`. An open tape belongs to the thread that opened it: it records only that thread's
    ops, and using it from another thread while it is open raises `TapeError`.

    Recorded tensors find their tape through a weak reference (no reference cycle: a tape nobody
    holds is freed by reference counting). So that ``with tg.Tape(): loss = ...`` then
    ``loss.backward()`` works, the one-shot tape closed last in a thread is kept alive until it is
    replayed or the next one closes; keep ``as tape`` to replay an older one.
    """

    def __init__(self, persistent: bool = False) -> None:
        self.persistent = persistent
        self._records: list[Record] | None = []
        self._watched: set[int] = set()
        self._watched_refs: list[Tensor] = []  # keeps watched ids from being reused
        self._ref = weakref.ref(self)  # what recorded tensors hold (Tensor._tape)
        self._owner: int | None = None  # the thread that has this tape open
        self._depth = 0
        # outputs no record saved, {id: [tensor, references from records]} (release.sweep); None keeps all
        self._unsaved: dict[int, list[Any]] | None = {}
        self._sweep_at = _SWEEP_MIN

    # --- recording ---------------------------------------------------------------------------
    def __enter__(self) -> Tape:
        self._check_thread("record on")
        if self._records is None:
            raise TapeError(_released_msg("record on"))
        self._owner = _get_ident()
        self._depth += 1
        tapes = current().tapes
        if any(t._unsaved is None for t in tapes):  # inside a tape that keeps everything: keep too
            self._unsaved = None
        tapes.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        state = current()
        _remove(state.tapes, self)
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            if self._unsaved:
                sweep(self._unsaved)
        if not self.persistent:  # the one kept for `loss.backward()`; nothing to keep when empty
            state.last_tape = self if self._records else None

    def watch(self, *tensors: Tensor) -> None:
        """Watch tensors that do not require grad, so that ops on them are recorded."""
        self._check_thread("watch")
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"Tape.watch expects tg.Tensor, got {type(t).__name__} at {call_site()}")
            if not t.data.is_floating_point():
                raise TypeError(
                    f"Tape.watch: cannot watch a {describe_tensor(t.data)} tensor; gradients exist only "
                    f"for floating point tensors (called at {call_site()})"
                )
            if id(t) not in self._watched:
                self._watched.add(id(t))
                self._watched_refs.append(t)

    def watches(self, t: Any) -> bool:
        """Whether ops on ``t`` are recorded here although it does not require grad."""
        return isinstance(t, Tensor) and id(t) in self._watched

    def record(self, prim: Any, args: tuple, raw: list, out: Tensor, params: dict, state: Any, requires: bool) -> None:
        """Append one op to this tape and to the other open tapes of ``state`` that watch its inputs.

        The only writer of a tape's records: `Primitive.__call__` calls it on the innermost open
        tape, with the op's inputs (``args``), their raw data and its output.
        """
        tapes = state.tapes
        if not requires:  # record only on the tapes that watch one of the inputs (most watch none)
            watching = []
            for t in tapes:
                ids = t._watched
                if ids and any(id(a) in ids for a in args):
                    watching.append(t)
            if not watching:
                return
            tapes = watching
        versions: list[int | None] = []  # a loop, not a comprehension: no function frame on Python 3.11
        unsaved = tapes[-1]._unsaved  # candidates for release (release.sweep); None: keep everything
        saves = prim.saves
        if saves is None:  # keeps everything
            for a, d in zip(args, raw):
                if a is d:
                    versions.append(None)
                else:
                    versions.append(d._version)
                    if unsaved:
                        unsaved.pop(id(a), None)  # saved: a VJP reads its values
            out_version = out.data._version
        else:
            kept, keep_out = saves
            i = 0
            for a, d in zip(args, raw):
                if a is d:
                    versions.append(None)
                elif kept is None or i in kept:
                    versions.append(d._version)
                    if unsaved:
                        unsaved.pop(id(a), None)
                else:  # not saved: the rules get the tg.Tensor (its metadata), the record not its data
                    versions.append(-1)
                    raw[i] = a
                    if unsaved:
                        entry = unsaved.get(id(a))
                        if entry is not None:
                            entry[1] += 2  # held by this record's inputs tuple and args list
                i += 1
            if keep_out:
                out_version = out.data._version
            else:
                out_version = -1
                if unsaved is not None:
                    unsaved[id(out)] = [out, 1]  # held by this record's output
                    if len(unsaved) > tapes[-1]._sweep_at:
                        sweep(unsaved)
                        tapes[-1]._sweep_at = max(_SWEEP_MIN, 2 * len(unsaved))
        scope = state.scope
        site = scope.site if scope is not None and scope.site is not None else call_site_key(3)
        record = Record(prim, args, out, params, scope, versions, site, raw, out_version)
        if out.requires_grad:
            for tape in tapes:
                tape._records.append(record)
        else:  # a tensor that requires grad is recorded without being watched
            for tape in tapes:
                tape._records.append(record)
                tape._watched.add(id(out))
        out._tape = tapes[-1]._ref

    @contextmanager
    def stop_recording(self) -> Iterator[None]:
        """A context in which this tape records nothing (other tapes go on)."""
        self._check_thread("stop_recording")
        tapes = current().tapes
        was_open = _remove(tapes, self)
        try:
            yield
        finally:
            if was_open:
                tapes.append(self)

    def __len__(self) -> int:
        return len(self._records or ())

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records or ())

    @property
    def records(self) -> list[Record]:
        """The records in the order they ran, a copy (empty once a one-shot tape was used)."""
        return list(self._records or ())

    @property
    def released(self) -> bool:
        """Whether this one-shot tape released its records after its first gradient."""
        return self._records is None

    def __repr__(self) -> str:
        state = "released" if self._records is None else f"{len(self._records)} records"
        return f"<Tape persistent={self.persistent} {state}>"

    # --- replay --------------------------------------------------------------------------------
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
        was_open = _remove(state.tapes, self)  # this tape never records its own replay
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
            if len(records) < n:  # partly consumed by a failed replay: unusable
                self._release(state)
        if not self.persistent:
            self._release(state)
        return grads, raw


def tape_of(t: Tensor) -> Tape | None:
    """The innermost tape that recorded ``t`` (None for a leaf, or when that tape was freed)."""
    ref = t._tape
    return None if ref is None else ref()


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


def _remove(tapes: list, tape: Tape) -> bool:
    for i in range(len(tapes) - 1, -1, -1):
        if tapes[i] is tape:
            del tapes[i]
            return True
    return False


@contextmanager
def no_grad() -> Iterator[None]:
    """A context in which no tape records and no output requires grad (torch.no_grad; per thread)."""
    state = current()
    saved = state.grad_enabled
    state.grad_enabled = False
    try:
        yield
    finally:
        state.grad_enabled = saved


@contextmanager
def enable_grad() -> Iterator[None]:
    """Undo `no_grad` inside it: the open tapes record again and outputs require grad (per thread)."""
    state = current()
    saved = state.grad_enabled
    state.grad_enabled = True
    try:
        yield
    finally:
        state.grad_enabled = saved


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise `tg.AnomalyError` at the first NaN or Inf of a forward or backward pass (per thread)."""
    state = current()
    saved = state.anomaly
    state.anomaly = True
    try:
        yield
    finally:
        state.anomaly = saved


@contextmanager
def scope(name: str, module: Any = None) -> Iterator[Scope]:
    """Open a named scope: records made inside carry it (``nn.Module.__call__`` opens one)."""
    state = current()
    parent = state.scope
    state.scope = Scope(parent, name, module)
    try:
        yield state.scope
    finally:
        state.scope = parent
