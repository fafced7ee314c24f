"""`tg.Tape`: records primitives while open; `Replay` (engine/replay.py) replays them in reverse."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import TapeError, call_site, call_site_key, describe_tensor
from .primitives import Record
from .release import sweep
from .replay import Replay, _released_msg, _remove
from .state import current
from .tensors import Tensor

__all__ = ["Tape", "tape_of"]

_get_ident = threading.get_ident
_new = object.__new__
_SWEEP_MIN = 32  # candidates a tape collects before it first looks for ones only it holds


class Tape(Replay):
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

    # the replay half (engine/replay.py), named here so that Tape's own page lists them
    gradient = Replay.gradient
    backward = Replay.backward

    # --- recording ---------------------------------------------------------------------------
    def __enter__(self) -> Tape:
        self._check_thread("record on")
        if self._records is None:
            raise TapeError(_released_msg("record on"))
        self._owner = _get_ident()
        self._depth += 1
        tapes = current().tapes
        if tapes and any(t._unsaved is None for t in tapes):  # inside a tape that keeps everything: keep too
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

    def record(self, prim: Any, args: tuple, raw: list, out: Any, params: dict, state: Any, requires: bool) -> None:
        """The only writer of records: one op (inputs, raw data, output(s)) onto the open tapes watching its inputs."""
        tapes = state.tapes
        if not requires:  # record only on the tapes that watch one of the inputs (most watch none)
            tapes = _watching(tapes, args)
            if not tapes:
                return
        last = tapes[-1]
        unsaved = last._unsaved  # candidates for release (release.sweep); None: keep everything
        saves = prim.saves
        kept = None if saves is None else saves[0]
        # Each input's saved version (None: not a tg.Tensor; -1: not saved, its `tg.Tensor` in ``raw``); a saved
        # input is no candidate for release; one not saved counts this record's references (inputs and args)
        versions: list[int | None] = []
        i = 0
        for a in args:
            d = raw[i]
            if a is d:
                versions.append(None)
            elif kept is None or i in kept:
                versions.append(d._version)
                if unsaved:
                    unsaved.pop(id(a), None)
            else:
                versions.append(-1)
                raw[i] = a
                if unsaved:
                    entry = unsaved.get(id(a))
                    if entry is not None:
                        entry[1] += 2
            i += 1
        if saves is None or saves[1]:  # (a tuple ``out``: the outputs of a multi-output primitive, one record)
            out_version = tuple(o.data._version for o in out) if out.__class__ is tuple else out.data._version
        else:
            out_version = -1
            if unsaved is not None:
                if out.__class__ is not tuple:  # (a multi-output record's outputs: `_record_outputs`)
                    unsaved[id(out)] = [out, 1]  # held by this record's output
                if len(unsaved) > last._sweep_at:
                    sweep(unsaved)
                    last._sweep_at = max(_SWEEP_MIN, 2 * len(unsaved))
        # the one place records are made (once per op: no __init__ call; one store per slot, no tuple packing)
        record = _new(Record)
        record.primitive, record.inputs = prim, args  # (pairs: no tuple built)
        record.output, record.params = out, params
        record.versions, record.out_version = versions, out_version
        record.args = raw
        record.scope = scope = state.scope
        site = None if scope is None else scope.site
        record.site = call_site_key(3) if site is None else site
        if out.__class__ is tuple:
            return _record_outputs(tapes, record, out, unsaved if out_version == -1 else None)
        if out.requires_grad and len(tapes) == 1:
            last._records.append(record)
        else:
            for tape in tapes:
                tape._records.append(record)
                if not out.requires_grad:  # a tensor that requires grad is recorded without being watched
                    tape._watched.add(id(out))
        out._tape = last._ref

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


def tape_of(t: Tensor) -> Tape | None:
    """The innermost tape that recorded ``t`` (None for a leaf, or when that tape was freed)."""
    ref = t._tape
    return None if ref is None else ref()


def _record_outputs(tapes: list[Tape], record: Record, outs: tuple[Tensor, ...], unsaved: Any) -> None:
    """`Tape.record`'s end for a multi-output record: on every tape, its outputs watched where none requires grad;
    outputs it does not save are candidates for release (``unsaved``, None when they are saved or all kept)."""
    for o in outs if unsaved is not None else ():
        unsaved[id(o)] = [o, 1]  # held by this record's output tuple
    requires = any(o.requires_grad for o in outs)
    for tape in tapes:
        tape._records.append(record)  # type: ignore[union-attr]  # (an open tape has its list)
        if not requires:
            tape._watched.update(map(id, outs))
    ref: Any = tapes[-1]._ref
    for o in outs:
        o._tape = ref


def _watching(tapes: list[Tape], args: tuple) -> list[Tape]:
    """The open tapes that watch one of ``args`` (an op none of whose inputs requires grad)."""
    found = []
    for t in tapes:
        ids = t._watched
        if ids and any(id(a) in ids for a in args):
            found.append(t)
    return found
