"""`tg.Tape`: records primitives while open and replays them in reverse to get gradients."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .errors import InPlaceError, ShapeError, TapeError, call_site, describe_tensor, format_site
from .primitive import Record, check_finite, describe
from .state import STATE, Scope
from .tensor import Tensor, wrap

__all__ = ["Tape", "no_grad", "enable_grad", "detect_anomaly", "scope"]


class Tape:
    """Records every primitive whose inputs depend on a watched tensor while the tape is open.

    Tensors with ``requires_grad=True`` are watched automatically; `watch` adds others. Tapes
    nest: a record goes on every open tape that watches its inputs. A one-shot tape
    (``persistent=False``) releases its records after the first `gradient` or `backward`.
    """

    def __init__(self, persistent: bool = False) -> None:
        self.persistent = persistent
        self._records: list[Record] | None = []
        self._watched: set[int] = set()
        self._watched_refs: list[Tensor] = []  # keeps watched ids from being reused

    # --- recording ---------------------------------------------------------------------------
    def __enter__(self) -> Tape:
        if self._records is None:
            raise TapeError(_released_msg("record on"))
        STATE.tapes.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _remove(STATE.tapes, self)

    def watch(self, *tensors: Tensor) -> None:
        """Watch tensors that do not require grad, so that ops on them are recorded."""
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

    @contextmanager
    def stop_recording(self) -> Iterator[None]:
        """A context in which this tape records nothing (other tapes go on)."""
        was_open = _remove(STATE.tapes, self)
        try:
            yield
        finally:
            if was_open:
                STATE.tapes.append(self)

    def __len__(self) -> int:
        return len(self._records or ())

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records or ())

    @property
    def records(self) -> list[Record]:
        """The records in the order they ran (empty once a one-shot tape was used)."""
        return list(self._records or ())

    def __repr__(self) -> str:
        state = "released" if self._records is None else f"{len(self._records)} records"
        return f"<Tape persistent={self.persistent} {state}>"

    # --- replay --------------------------------------------------------------------------------
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
        returns ``None`` for it. Computed with tapegrad ops: an outer open tape records them.
        """
        single = isinstance(sources, Tensor)
        srcs = (sources,) if single else tuple(sources)
        for i, s in enumerate(srcs):
            if not isinstance(s, Tensor) or not s.data.is_floating_point():
                what = type(s).__name__ if not isinstance(s, Tensor) else f"a {s.dtype} tensor"
                raise TapeError(
                    f"gradient: source {i} is {what}; gradients exist only for float tg.Tensors "
                    f"(called at {call_site()})"
                )
        grads = self._replay(target, grad_output, srcs)
        result = []
        for i, s in enumerate(srcs):
            g = grads.get(id(s), (None, None))[1]
            if g is None and not allow_unused:
                raise TapeError(
                    f"gradient: source {i} {describe_tensor(s.data)} was not used to compute the target "
                    f"on this tape (pass allow_unused=True to get None for it; called at {call_site()})"
                )
            result.append(g)
        return result[0] if single else tuple(result)

    def backward(self, target: Tensor, grad_output: Tensor | None = None) -> None:
        """Accumulate the gradient of ``target`` into ``.grad`` of the leaves that require grad."""
        self._check_usable("backward")
        grads, raw = self._replay(target, grad_output, None, wrapped=False)
        for leaf, g in grads.values():
            if raw:
                g = wrap(g)
            leaf.grad = g if leaf.grad is None else leaf.grad + g

    def _release(self) -> None:
        self._records = None
        self._watched = set()
        self._watched_refs = []

    def _check_usable(self, what: str) -> list[Record]:
        if self._records is None:
            raise TapeError(_released_msg(what))
        return self._records

    def _replay(self, target: Tensor, grad_output: Any, sources: tuple | None, wrapped: bool = True) -> Any:
        """{id: (tensor, gradient)} for the sources, or for the leaves that require grad (None).

        ``wrapped=False`` returns ``(that dict, raw)`` instead, the gradients as raw torch when ``raw``.
        """
        records = self._check_usable("gradient")
        if not isinstance(target, Tensor):
            raise TapeError(
                f"gradient: the target must be a tg.Tensor, got {type(target).__name__} (called at {call_site()})"
            )
        was_open = _remove(STATE.tapes, self)  # this tape never records its own replay
        n = len(records)
        try:
            # Higher order needs tg.Tensors so that open tapes record the VJPs; else raw torch.
            raw = not STATE.tapes and not STATE.anomaly
            seed = _seed(target, grad_output, raw)
            # A one-shot tape drops each record once replayed, so that memory is freed as it goes.
            grads = _backpropagate(records, target, seed, sources, raw, consume=not self.persistent)
        finally:
            if was_open:
                STATE.tapes.append(self)
            if len(records) < n:  # partly consumed by a failed replay: unusable
                self._release()
        if not self.persistent:
            self._release()
        if not wrapped:
            return grads, raw
        if raw:
            grads = {k: (t, wrap(g)) for k, (t, g) in grads.items()}
        return grads


def _seed(target: Tensor, grad_output: Any, raw: bool) -> Any:
    if grad_output is None:
        if target.data.numel() != 1:
            raise TapeError(
                f"gradient: the target has shape {tuple(target.shape)}; a non-scalar target needs "
                f"grad_output of the same shape (called at {call_site()})"
            )
        seed = torch.ones_like(target.data)
        return seed if raw else wrap(seed)
    g = grad_output.data if isinstance(grad_output, Tensor) else torch.as_tensor(grad_output)
    if g.shape != target.data.shape:
        raise ShapeError(
            f"gradient: grad_output has shape {tuple(g.shape)} but the target has shape "
            f"{tuple(target.shape)} (called at {call_site()})"
        )
    if raw:
        return g
    return grad_output if isinstance(grad_output, Tensor) else wrap(g)


def _backpropagate(records, target, seed, sources, raw: bool, consume: bool = False) -> dict[int, tuple]:
    """Walk the records in reverse, calling each VJP for the inputs that lead back to a source.

    ``sources=None`` means the leaves that require grad (`Tape.backward`): then a tensor leads
    back to one exactly when it requires grad, and no forward pass over the tape is needed.
    ``consume`` pops the records off the list as they are replayed. Returns {id: (tensor, gradient)}.
    """
    if sources is None:
        live = source_ids = None
        if not target.requires_grad:
            _check_recorded(records, target)
            return {}
    else:
        source_ids = {id(s) for s in sources}
        live = set(source_ids)  # ids of tensors that depend on a source
        for r in records:
            for a in r.inputs:
                if id(a) in live:
                    live.add(id(r.output))
                    break
        if id(target) not in live:
            if id(target) in source_ids:
                return {id(target): (target, seed)}
            _check_recorded(records, target)
            return {}
    found: dict[int, tuple] = {}
    anomaly = STATE.anomaly
    grads = {id(target): seed}
    owners = {id(target): target}  # stale entries are harmless: the result is read through grads
    stack = records if consume else records.copy()
    while stack:
        r = stack.pop()
        out = r.output
        key = id(out)
        g = grads.pop(key, None)
        if g is None:
            continue
        if source_ids is not None and key in source_ids:
            found[key] = (out, g)
        versions = r.versions  # the in-place check, inlined: it runs for every record
        args = r.args
        for d, v in zip(args, versions):
            if v is not None and d._version != v:
                _check_versions(r)
        if out.data._version != versions[-1]:
            _check_versions(r)
        inputs = r.inputs
        prim = r.primitive
        if raw:
            o = out.data
        else:
            args, o = inputs, out
        vjps, params, all_grads = prim.vjps, r.params, None
        i = -1
        for a in inputs:  # one pass: which inputs need a gradient, their VJP, accumulation
            i += 1
            if versions[i] is None or not (a.requires_grad if live is None else id(a) in live):
                continue  # not a tg.Tensor (no saved version), or it leads to no source
            if vjps is not None:
                gi = vjps[i](g, o, *args, **params) if params else vjps[i](g, o, *args)
            elif prim.vjp is not None:
                if all_grads is None:
                    all_grads = prim.vjp(g, o, *args, **params)
                gi = all_grads[i]
            else:
                raise TapeError(
                    f"{prim.name} has no VJP: it cannot be differentiated ({_where(r)}, on inputs "
                    f"{describe(r.inputs)}); the backward pass was called at {call_site()}"
                )
            if gi is None:
                continue
            if gi.shape != args[i].shape:
                raise TapeError(
                    f"VJP of {prim.name} returned a gradient of shape {tuple(gi.shape)} for input {i} "
                    f"of shape {tuple(a.shape)} ({_where(r)})"
                )
            if anomaly:
                check_finite(gi.data if isinstance(gi, Tensor) else gi, f"the VJP of {prim.name}", "backward", r)
            k = id(a)
            prev = grads.get(k)
            if prev is None:
                grads[k] = gi
                owners[k] = a
            else:
                grads[k] = prev + gi
    if source_ids is None:  # what is left are the leaves: no record produced them
        return {k: (owners[k], g) for k, g in grads.items()}
    for k in source_ids:
        if k in grads:
            found[k] = (owners[k], grads[k])
    return found


def _check_recorded(records, target: Tensor) -> None:
    if not any(r.output is target for r in records):
        raise TapeError(
            f"gradient: the target {tuple(target.shape)} was not recorded on this tape; compute "
            f"it inside `with tape:` from watched tensors (called at {call_site()})"
        )


def _check_versions(r: Record) -> None:
    versions = r.versions
    for d, v in zip(r.args, versions):
        if v is not None and d._version != v:
            raise _inplace_error(r, _input_of(r, d), v)
    if r.output.data._version != versions[-1]:
        raise _inplace_error(r, r.output, versions[-1])


def _input_of(r: Record, d) -> Tensor:
    for a, data in zip(r.inputs, r.args):
        if data is d:
            return a
    return r.output


def _inplace_error(r: Record, t: Tensor, version: int) -> InPlaceError:
    if t is r.output:
        role = "its output"
    else:  # by identity: == on tensors is elementwise
        role = "input " + ", ".join(str(i) for i, a in enumerate(r.inputs) if a is t)
    return InPlaceError(
        f"{r.primitive.name} ({_where(r)}) saved {role} {describe_tensor(t.data)} for its gradient, but that "
        f"tensor was modified in place after it was recorded (version {version} -> {t.data._version}); clone "
        f"it before changing it. The backward pass was called at {call_site()}"
    )


def _where(r: Record) -> str:
    scope = f"in {r.scope!r}, " if r.scope is not None else ""
    return f"{scope}recorded at {format_site(r.site)}"


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
    """A context in which no tape records and no output requires grad (torch.no_grad)."""
    saved_tapes, saved = STATE.tapes, STATE.grad_enabled
    STATE.tapes, STATE.grad_enabled = [], False
    try:
        yield
    finally:
        STATE.tapes, STATE.grad_enabled = saved_tapes, saved


@contextmanager
def enable_grad() -> Iterator[None]:
    """Undo `no_grad` inside it: outputs of ops on requires_grad tensors require grad again."""
    saved = STATE.grad_enabled
    STATE.grad_enabled = True
    try:
        yield
    finally:
        STATE.grad_enabled = saved


@contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise `tg.AnomalyError` at the first NaN or Inf of a forward or backward pass."""
    saved = STATE.anomaly
    STATE.anomaly = True
    try:
        yield
    finally:
        STATE.anomaly = saved


@contextmanager
def scope(name: str, module: Any = None) -> Iterator[Scope]:
    """Open a named scope: records made inside carry it (``nn.Module.__call__`` opens one)."""
    parent = STATE.scope
    STATE.scope = Scope(parent, name, module)
    try:
        yield STATE.scope
    finally:
        STATE.scope = parent
