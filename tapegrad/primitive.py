"""The primitive registry: each op's forward (plain torch) and VJP (tapegrad ops) side by side.

A VJP rule is written with operators and methods that `tg.Tensor` and `torch.Tensor` share
(``g * y``, ``g @ w.mT``, ``g.sum_to_size(shape)``). The replay hands it raw torch tensors when
nothing needs to record the backward pass (first order: plain torch speed) and `tg.Tensor`s
when an outer tape is open (the rule's own ops are then recorded: higher-order gradients).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import MethodType
from typing import Any

import torch

from .errors import (
    AnomalyError,
    IndexShapeError,
    ShapeError,
    call_site,
    call_site_key,
    describe_tensor,
    format_site,
    scope_text,
)
from .state import STATE
from .tensor import Tensor

__all__ = ["Primitive", "Record", "primitive", "registered_primitives"]

_REGISTRY: dict[str, Primitive] = {}


class Record:
    """One op on a tape, as plain data: what ran, on what, with which params, where."""

    __slots__ = ("primitive", "inputs", "output", "params", "scope", "versions", "site", "args")

    def __init__(self, primitive, inputs, output, params, scope, versions, site, args=None) -> None:
        self.primitive: Primitive = primitive
        self.inputs: tuple = inputs  # tg.Tensors, Python numbers, non-float torch tensors
        self.output: Tensor = output
        self.params: dict = params
        self.scope = scope  # state.Scope or None
        # torch _version of each input's data (None for inputs that are not tg.Tensors), then the output's
        self.versions: tuple[int | None, ...] = versions
        self.site = site  # (code, line) of the user's call
        # the raw torch data the forward saw, in input order: what VJP rules get on the fast path
        self.args: list = args if args is not None else [a.data if isinstance(a, Tensor) else a for a in inputs]

    @property
    def call_site(self) -> str:
        """Where the user's code ran this op, as 'file.py:12 in fn'."""
        return format_site(self.site)

    def __repr__(self) -> str:
        shapes = [tuple(a.shape) if isinstance(a, Tensor) else a for a in self.inputs]
        scope = f" in {self.scope!r}" if self.scope is not None else ""
        return f"<Record {self.primitive.name}{shapes} -> {tuple(self.output.shape)}{scope}>"


class Primitive:
    """A differentiable op: ``forward(*torch_tensors, **params) -> torch.Tensor`` plus its VJP.

    ``vjp`` is either one function ``vjp(g, out, *inputs, **params)`` returning a gradient per
    input (``None`` where there is none), or a sequence of per-input functions with the same
    arguments, each returning that input's gradient (HIPS autograd's ``defvjp``); the replay
    then only computes the gradients it needs.
    """

    __slots__ = ("name", "forward", "vjp", "vjps", "origin", "doc")

    def __init__(self, name: str, forward: Callable, vjp: Callable | Sequence | None, doc: str = "") -> None:
        self.name = name
        self.forward = forward
        self.vjp = vjp if callable(vjp) else None
        self.vjps = tuple(vjp) if vjp is not None and not callable(vjp) else None
        self.origin = sys._getframe(2).f_globals.get("__name__", "")
        self.doc = doc or f"The `{name}` primitive."

    @property
    def differentiable(self) -> bool:
        """Whether a VJP was given."""
        return self.vjp is not None or self.vjps is not None

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    @property
    def __name__(self) -> str:
        return self.name

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # Bind like a function, so that a primitive can be a Tensor method (x.exp()).
        return self if obj is None else MethodType(self, obj)

    def __call__(self, *args: Any, **params: Any) -> Any:
        # The hot path of every op: one pass over the arguments, no helper calls when not recording.
        raw = []
        wrapped = requires = False
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a.data)
                wrapped = True
                if a.requires_grad:
                    requires = True
            else:
                raw.append(a)
        try:
            out_data = self.forward(*raw, **params)
        except (RuntimeError, IndexError, TypeError, ValueError) as err:
            raise _forward_error(self, args, params, err) from err
        if not wrapped:  # raw torch in, raw torch out: the fast path of VJP rules
            return out_data
        out = _new(Tensor)  # tensor.wrap, inlined
        out.data = out_data
        out.grad = out._tape = None
        state = STATE
        if state.grad_enabled:
            out.requires_grad = requires and out_data.is_floating_point()
            if state.tapes:
                _record(self, args, raw, out, params, state, requires)
        else:
            out.requires_grad = False
        if state.anomaly:
            check_finite(out_data, self.name, "forward")
        return out


_new = object.__new__


def _record(prim: Primitive, args: tuple, raw: list, out: Tensor, params: dict, state, requires: bool) -> None:
    tapes = state.tapes
    if not requires:  # record only on the tapes that watch one of the inputs
        tapes = [t for t in tapes if any(isinstance(a, Tensor) and id(a) in t._watched for a in args)]
        if not tapes:
            return
    versions = []  # a loop, not a comprehension: no function frame on Python 3.11
    for a, d in zip(args, raw):
        versions.append(None if a is d else d._version)
    versions.append(out.data._version)
    record = Record(prim, args, out, params, state.scope, versions, call_site_key(3), raw)
    if out.requires_grad:
        for tape in tapes:
            tape._records.append(record)
    else:  # a tensor that requires grad is recorded without being watched
        for tape in tapes:
            tape._records.append(record)
            tape._watched.add(id(out))
    out._tape = tapes[-1]


def check_finite(data: Any, op: str, phase: str, record: Record | None = None) -> None:
    """Raise `AnomalyError` if ``data`` holds a NaN or Inf (used by `tg.detect_anomaly`).

    ``record`` is the record whose VJP produced ``data`` in the backward pass; a forward-pass
    check that runs inside a VJP rule (higher order) finds the record being replayed itself.
    """
    if isinstance(data, torch.Tensor) and data.is_floating_point() and not bool(torch.isfinite(data).all()):
        raise _anomaly(data, op, phase, record)


def _anomaly(data: torch.Tensor, op: str, phase: str, record: Record | None) -> AnomalyError:
    kind = "NaN" if bool(torch.isnan(data).any()) else "Inf"
    if record is None and phase == "forward":
        record = _replaying()
        if record is not None:
            op = f"{op} (inside the VJP of {record.primitive.name})"
    if record is None:
        return AnomalyError(
            f"{op} produced {kind} in the {phase} pass{scope_text(STATE.scope)}, called at {call_site()} "
            f"(output {describe_tensor(data)})"
        )
    return AnomalyError(
        f"{op} produced {kind} in the backward pass{scope_text(record.scope)}; "
        f"{record.primitive.name} was recorded at {record.call_site} on inputs {describe(record.inputs)}; "
        f"the backward pass was called at {call_site()}"
    )


def _replaying() -> Record | None:
    """The record whose VJP the innermost tape replay is running, if any (error path only)."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_backpropagate" and code.co_filename.endswith("tape.py"):
            r = frame.f_locals.get("r")
            return r if isinstance(r, Record) else None
        frame = frame.f_back
    return None


def describe(args: Sequence[Any]) -> str:
    """'(3, 4) float32 cpu, (5,) float32 cpu' for the tensors among ``args``, numbers as they are."""
    parts = []
    for a in args:
        data = a.data if isinstance(a, Tensor) else a
        if isinstance(data, torch.Tensor):
            dtype = str(data.dtype).replace("torch.", "")
            parts.append(f"{tuple(data.shape)} {dtype} {data.device}")
        else:
            parts.append(repr(data))
    return ", ".join(parts)


def _forward_error(prim: Primitive, args: tuple, params: dict, err: Exception) -> Exception:
    extra = f" with {', '.join(f'{k}={_short(v)}' for k, v in params.items())}" if params else ""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    mismatch = _mismatch(args)
    if mismatch:
        reason = f"{mismatch} ({reason})"
    msg = (
        f"{prim.name}: cannot apply to {describe(args)}{extra}{scope_text(STATE.scope)}, "
        f"called at {call_site()}: {reason}"
    )
    if isinstance(err, IndexError):
        return IndexShapeError(msg)
    return ShapeError(msg) if isinstance(err, (RuntimeError, ValueError)) else type(err)(msg)


def _short(value: Any) -> str:
    if isinstance(value, (torch.Tensor, Tensor)):
        return f"tensor {describe_tensor(value)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _mismatch(args: tuple) -> str:
    """Name a device or float-dtype disagreement among the tensor operands, '' if there is none."""
    datas = [a.data if isinstance(a, Tensor) else a for a in args]
    datas = [d for d in datas if isinstance(d, torch.Tensor)]
    devices = list(dict.fromkeys(str(d.device) for d in datas))
    if len(devices) > 1:
        return f"operands are on different devices ({', '.join(devices)}); move them with .to(device)"
    dtypes = list(dict.fromkeys(str(d.dtype).replace("torch.", "") for d in datas if d.is_floating_point()))
    if len(dtypes) > 1:
        return f"dtype mismatch between {' and '.join(dtypes)}; cast one with .to(dtype)"
    return ""


def primitive(name: str, forward: Callable, vjp: Callable | Sequence | None, doc: str = "") -> Primitive:
    """Declare a differentiable op and register it under ``name``; returns the op as a callable.

    ``forward(*torch_tensors, **params)`` computes the output with plain torch. ``vjp`` gives
    the gradient of each input from the output's gradient ``g`` (see `Primitive`); write it with
    tapegrad ops or with operators and methods shared by torch and tapegrad tensors, so that an
    outer tape can differentiate it again. Registering a name again replaces the old op.
    """
    prim = Primitive(name, forward, vjp, doc)
    _REGISTRY[name] = prim
    return prim


def registered_primitives() -> dict[str, Primitive]:
    """All registered primitives by name (a copy), the library's own and the user's."""
    return dict(_REGISTRY)
