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

from .declaration import check_declaration, rule_forms, saved_positions, takes_mask
from .op_errors import check_finite, forward_error
from .record import FLOATING, Record, record_outputs
from .state import current, per_thread
from .tensors import Tensor

__all__ = ["Primitive", "Record", "primitive", "registered_primitives"]

_REGISTRY: dict[str, Primitive] = {}


class Primitive:
    """A differentiable op: ``forward(*torch_tensors, **params) -> torch.Tensor`` plus its VJP.

    ``vjp`` is either one function ``vjp(g, out, *inputs, **params)`` returning a gradient per
    input (``None`` where there is none), or a sequence of per-input functions with the same
    arguments, each returning that input's gradient (HIPS autograd's ``defvjp``); the replay
    then only computes the gradients it needs. A function of all inputs that names a keyword
    parameter ``needs_input_grad`` gets a list of bools, one per input, True where the replay uses
    the gradient (torch's ``ctx.needs_input_grad``); it may return None for the others. This
    reference rule works on `tg.Tensor` objects, so that an outer tape can differentiate it again.

    ``fast_vjp`` (optional, the same two forms) is a first-order rule on raw torch tensors only,
    free to use in-place torch ops and fused kernels; the replay runs it instead of ``vjp``
    whenever nothing records the backward pass. It must agree with ``vjp`` (the registry tests
    check every primitive that has both).

    ``saves`` declares which tensors the VJP rules read (see `primitive`); ``None`` keeps them all.
    ``residuals`` (optional) is the forward that also returns what the fast rule reuses (see `primitive`).
    ``multi_output`` (see `primitive`): the forward returns a tuple of tensors, recorded as one record.
    """

    __slots__ = (
        "name", "forward", "vjp", "vjps", "fast_vjp", "fast_vjps", "first_order", "reference", "origin", "doc",
        "saves", "residuals", "multi", "fills_unused",
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
        multi_output: bool = False,
        unused_cotangents: str = "zeros",
    ) -> None:
        self.name = name
        self.multi = bool(multi_output)
        # whether the walk hands the rules zeros (True) or None for the outputs nobody used
        self.fills_unused = unused_cotangents == "zeros"
        self.forward = forward
        self.residuals = residuals
        self.vjp, self.vjps = rule_forms(vjp)
        self.fast_vjp, self.fast_vjps = rule_forms(fast_vjp)
        # None (keep everything) or (input positions kept, None for all; whether the output is kept)
        self.saves = saved_positions(name, saves)
        # (vjp, vjps, whether that vjp takes needs_input_grad) of the rule a first-order replay on raw torch
        # runs (the fast one if given), and of the reference rule (higher order)
        self.reference = (self.vjp, self.vjps, takes_mask(self.vjp))
        fast = (self.fast_vjp, self.fast_vjps, takes_mask(self.fast_vjp))
        self.first_order = fast if self.has_fast_vjp else self.reference
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
        if not wrapped:  # raw torch in, raw torch out: the fast path of VJP rules
            try:
                return self.forward(*raw, **params)
            except (RuntimeError, IndexError, TypeError, ValueError) as err:
                raise forward_error(self, args, params, err) from err
        try:  # state.current(), inlined: the thread's state is fetched once per op
            state = per_thread.state
        except AttributeError:
            state = current()
        tapes = state.tapes if state.grad_enabled else None
        extra = None
        try:
            # a record whose first-order replay may reuse forward residuals (a tape that keeps everything,
            # for `tg.trace` or blame, replays from the inputs alone)
            if requires and self.residuals is not None and tapes and tapes[-1]._unsaved is not None:
                out_data, extra = self.residuals(*raw, **params)
            else:
                out_data = self.forward(*raw, **params)
        except (RuntimeError, IndexError, TypeError, ValueError) as err:
            raise forward_error(self, args, params, err) from err
        if self.multi:
            return record_outputs(self, args, raw, out_data, params, extra, requires, state, tapes)
        out = _new(Tensor)  # tensor.wrap, inlined
        out.data = out_data
        out.grad = out._tape = None
        if tapes is None:
            out.requires_grad = False
        else:
            out.requires_grad = requires and out_data.dtype in FLOATING  # is_floating_point(), without the call
            if tapes:
                tapes[-1].record(self, args, raw, out, params, state, requires)
                if extra is not None:  # the record's args: what its fast rule gets after the inputs
                    raw.extend(extra)
        if state.anomaly:
            check_finite(out_data, self.name, "forward")
        return out


_new = object.__new__


def primitive(
    name: str,
    forward: Callable,
    vjp: Callable | Sequence | None,
    doc: str = "",
    fast_vjp: Callable | Sequence | None = None,
    saves: Sequence[int | str] | None = None,
    residuals: Callable | None = None,
    multi_output: bool = False,
    unused_cotangents: str = "zeros",
) -> Primitive:
    """Declare a differentiable op and register it under ``name``; returns the op as a callable.

    ``forward(*torch_tensors, **params)`` computes the output with plain torch. ``vjp`` gives
    the gradient of each input from the output's gradient ``g`` (see `Primitive`); write it with
    tapegrad ops or with operators and methods shared by torch and tapegrad tensors, so that an
    outer tape can differentiate it again. ``fast_vjp`` is an optional first-order rule on raw
    torch tensors that the replay runs instead when nothing records it (see `Primitive`).
    Registering a name again replaces the old op.

    A rule of all inputs (either kind) may name a keyword parameter ``needs_input_grad``: the replay
    then passes a list of bools, True for each input whose gradient it uses, so the rule can skip
    the work for the others (return None for them); called without it (None), a rule computes every
    gradient::

        def scale_vjp(g, out, x, c, *, needs_input_grad=None):
            need_x, need_c = needs_input_grad or (True, True)
            return (g * c if need_x else None), ((g * x).sum() if need_c else None)

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

    ``multi_output=True``: the forward returns a tuple of tensors, one record for all; the rules get ``g`` and ``out``
    as tuples, zeros (``unused_cotangents="none"``: None) for an unused output's ``g`` (docs/primitives.md).
    """
    check_declaration(name, forward, vjp, fast_vjp, residuals, unused_cotangents)
    prim = Primitive(name, forward, vjp, doc, fast_vjp, saves, residuals, multi_output, unused_cotangents)
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
