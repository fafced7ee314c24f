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
    SiteKey,
    call_site,
    describe_tensor,
    format_site,
    scope_text,
)
from .release import Released
from .state import Scope, current, per_thread
from .tensors import Tensor

__all__ = ["Primitive", "Record", "primitive", "registered_primitives"]

_REGISTRY: dict[str, Primitive] = {}


class Record:
    """One op on a tape, as plain data: what ran, on what, with which params, where."""

    __slots__ = ("primitive", "inputs", "output", "params", "scope", "versions", "out_version", "site", "args")

    def __init__(
        self,
        primitive: Primitive,
        inputs: tuple[Any, ...],
        output: Tensor,
        params: dict[str, Any],
        scope: Scope | None,
        versions: Sequence[int | None],
        site: SiteKey | None,
        args: list[Any] | None = None,
        out_version: int = 0,
    ) -> None:
        self.primitive = primitive
        self.inputs = inputs  # tg.Tensors, Python numbers, non-float torch tensors
        self.output = output
        self.params = params
        self.scope = scope
        # torch _version of each input's data (None for inputs that are not tg.Tensors, -1 for a tensor
        # the primitive does not save), and the output's (-1 when it is not saved)
        self.versions = versions
        self.out_version = out_version
        self.site = site  # (code, line) of the user's call
        # what VJP rules get on the fast path, in input order: the raw torch data the forward saw, or the
        # tg.Tensor itself (metadata only) for an input the primitive does not save
        self.args = args if args is not None else [a.data if isinstance(a, Tensor) else a for a in inputs]

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
    then only computes the gradients it needs. This reference rule works on `tg.Tensor` objects, so
    that an outer tape can differentiate it again.

    ``fast_vjp`` (optional, the same two forms) is a first-order rule on raw torch tensors only,
    free to use in-place torch ops and fused kernels; the replay runs it instead of ``vjp``
    whenever nothing records the backward pass. It must agree with ``vjp`` (the registry tests
    check every primitive that has both).

    ``saves`` declares which tensors the VJP rules read (see `primitive`); ``None`` keeps them all.
    ``residuals`` (optional) is the forward that also returns what the fast rule reuses (see `primitive`).
    """

    __slots__ = (
        "name", "forward", "vjp", "vjps", "fast_vjp", "fast_vjps", "first_order", "origin", "doc", "saves",
        "residuals",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        forward: Callable,
        vjp: Callable | Sequence | None,
        doc: str = "",
        fast_vjp: Callable | Sequence | None = None,
        saves: Sequence[int | str] | None = None,
        residuals: Callable | None = None,
    ) -> None:
        self.name = name
        self.forward = forward
        self.residuals = residuals
        self.vjp, self.vjps = _rule(vjp)
        self.fast_vjp, self.fast_vjps = _rule(fast_vjp)
        # None (keep everything) or (input positions kept, None for all; whether the output is kept)
        self.saves = _saves(name, saves)
        # (vjp, vjps) of the rule a first-order replay on raw torch runs: the fast one if given
        self.first_order = (self.fast_vjp, self.fast_vjps) if self.has_fast_vjp else (self.vjp, self.vjps)
        self.origin = _caller_module()
        self.doc = doc or f"The `{name}` primitive."

    @property
    def differentiable(self) -> bool:
        """Whether a VJP was given."""
        return self.vjp is not None or self.vjps is not None

    @property
    def has_fast_vjp(self) -> bool:
        """Whether a raw-torch first-order rule (``fast_vjp``) was given beside the reference VJP."""
        return self.fast_vjp is not None or self.fast_vjps is not None

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
        extra = None
        try:
            if self.residuals is not None and requires and _keeps_residuals():
                out_data, extra = self.residuals(*raw, **params)
            else:
                out_data = self.forward(*raw, **params)
        except (RuntimeError, IndexError, TypeError, ValueError) as err:
            raise _forward_error(self, args, params, err) from err
        if not wrapped:  # raw torch in, raw torch out: the fast path of VJP rules
            return out_data
        out = _new(Tensor)  # tensor.wrap, inlined
        out.data = out_data
        out.grad = out._tape = None
        try:  # state.current(), inlined: the thread's state is fetched once per op
            state = per_thread.state
        except AttributeError:
            state = current()
        if state.grad_enabled:
            out.requires_grad = requires and out_data.is_floating_point()
            tapes = state.tapes
            if tapes:
                tapes[-1].record(self, args, raw, out, params, state, requires)
                if extra is not None:  # the record's args: what its fast rule gets after the inputs
                    raw.extend(extra)
        else:
            out.requires_grad = False
        if state.anomaly:
            check_finite(out_data, self.name, "forward")
        return out


_new = object.__new__


def _keeps_residuals() -> bool:
    """Whether the op about to run goes on a tape whose first-order replay may reuse forward residuals
    (a tape that keeps everything, for `tg.trace` or blame, replays from the inputs alone)."""
    state = current()
    tapes = state.tapes
    return bool(state.grad_enabled and tapes and tapes[-1]._unsaved is not None)


def _saves(name: str, saves: Sequence[int | str] | None) -> tuple[frozenset[int] | None, bool] | None:
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


def _rule(rule: Callable | Sequence | None) -> tuple[Callable | None, tuple | None]:
    """(one function for all inputs, None) or (None, per-input functions) or (None, None)."""
    if rule is None:
        return None, None
    return (rule, None) if callable(rule) else (None, tuple(rule))


def check_finite(data: Any, op: str, phase: str, record: Record | None = None) -> None:
    """Raise `AnomalyError` if ``data`` holds a NaN or Inf (used by `tg.detect_anomaly`).

    ``record`` is the record whose VJP produced ``data`` in the backward pass; a forward-pass
    check that runs inside a VJP rule (higher order) learns the record being replayed from the
    walk (``State.replaying``).
    """
    if isinstance(data, torch.Tensor) and data.is_floating_point() and not bool(torch.isfinite(data).all()):
        raise _anomaly(data, op, phase, record)


def _anomaly(data: torch.Tensor, op: str, phase: str, record: Record | None) -> AnomalyError:
    kind = "NaN" if bool(torch.isnan(data).any()) else "Inf"
    state = current()
    if record is None and phase == "forward":
        record = state.replaying
        if record is not None:
            op = f"{op} (inside the VJP of {record.primitive.name})"
    if record is None:
        return AnomalyError(
            f"{op} produced {kind} in the {phase} pass{scope_text(state.scope)}, called at {call_site()} "
            f"(output {describe_tensor(data)})"
        )
    return AnomalyError(
        f"{op} produced {kind} in the backward pass{scope_text(record.scope)}; "
        f"{record.primitive.name} was recorded at {record.call_site} on inputs {describe(record.inputs)}; "
        f"the backward pass was called at {call_site()}"
    )


def describe(args: Sequence[Any]) -> str:
    """'(3, 4) float32 cpu, (5,) float32 cpu' for the tensors among ``args``, numbers as they are."""
    parts = []
    for a in args:
        data = a.data if isinstance(a, Tensor) else a
        if isinstance(data, (torch.Tensor, Released)):
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
        f"{prim.name}: cannot apply to {describe(args)}{extra}{scope_text(current().scope)}, "
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


def primitive(
    name: str,
    forward: Callable,
    vjp: Callable | Sequence | None,
    doc: str = "",
    fast_vjp: Callable | Sequence | None = None,
    saves: Sequence[int | str] | None = None,
    residuals: Callable | None = None,
) -> Primitive:
    """Declare a differentiable op and register it under ``name``; returns the op as a callable.

    ``forward(*torch_tensors, **params)`` computes the output with plain torch. ``vjp`` gives
    the gradient of each input from the output's gradient ``g`` (see `Primitive`); write it with
    tapegrad ops or with operators and methods shared by torch and tapegrad tensors, so that an
    outer tape can differentiate it again. ``fast_vjp`` is an optional first-order rule on raw
    torch tensors that the replay runs instead when nothing records it (see `Primitive`).
    Registering a name again replaces the old op.

    ``saves`` declares what the VJP rules read, as ``ctx.save_for_backward`` does in torch: a
    sequence of input positions, ``"inputs"`` (all of them) and ``"output"``. A record then keeps
    only those tensors; the forward's other tensors are freed as soon as nothing else holds them.
    For a tensor input that is not saved, the rules get its `tg.Tensor`, whose metadata (``shape``,
    ``dtype``, ``device``, ``dim()``) they may read, but not its values. ``None`` (the default)
    keeps every input and the output. Non-tensor arguments (numbers, index tensors) are always kept::

        def cube_vjp(g, out, x):          # reads x, never out
            return (g * 3 * x * x,)

        cube = tg.primitive("cube", lambda x: x**3, cube_vjp, saves=(0,))
        scale = tg.primitive("scale", lambda x, c: x * c, [lambda g, out, x, c: g * c, None], saves=())
        softplus = tg.primitive(
            "softplus", lambda x: x.exp().log1p(), [lambda g, out, x: g * (1 - (-out).exp())], saves=["output"]
        )

    ``residuals`` keeps what the forward computes on the way and the fast rule needs again (layer
    norm's mean and 1/std, attention's row log-sum-exps): a function of the forward's arguments
    returning ``(output, (tensor, ...))``, the same output as ``forward``. When the op is recorded for a
    replay that may run the fast rule, it runs instead of ``forward``, the record keeps the extra
    tensors, and the fast rule gets them as positional arguments after the inputs; a fast rule must
    also work without them (a record from ``forward`` alone, as `tg.trace` makes). The reference
    rule never gets them.
    """
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
    prim = Primitive(name, forward, vjp, doc, fast_vjp, saves, residuals)
    _REGISTRY[name] = prim
    return prim


def _caller_module() -> str:
    """The module that called `primitive` (or built a `Primitive`): the first frame outside this
    module and the argument-error wrapper of tapegrad's exports (`tapegrad._validate`)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "tapegrad._validate"):
        frame = frame.f_back  # type: ignore[assignment]
    return "" if frame is None else str(frame.f_globals.get("__name__", ""))


def registered_primitives() -> dict[str, Primitive]:
    """All registered primitives by name (a copy), the library's own and the user's."""
    return dict(_REGISTRY)
