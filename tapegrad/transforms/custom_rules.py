"""`tg.custom_vjp`: a function with a hand-written VJP that keeps residuals, as ``jax.custom_vjp``.

::

    @tg.custom_vjp
    def f(x): ...                    # the primal, run when nothing records
    def f_fwd(x): return y, res      # output and what the backward pass needs
    def f_bwd(res, g): return (gx,)  # one gradient (or None) per argument
    f.defvjp(f_fwd, f_bwd)

While a tape records, a call runs ``f_fwd`` (unrecorded) and puts one record on the tape whose
VJP is ``f_bwd``. Higher order: when the reverse walk is itself recorded, ``f_fwd`` runs again
on the recorded inputs so that the residuals, and through them ``f_bwd``, are differentiated too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from ..engine.primitives import Primitive
from ..engine.state import current
from ..engine.tape import no_grad
from ..engine.tensors import Tensor, wrap

__all__ = ["custom_vjp"]


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


class _Call:
    """One call: which arguments were tg.Tensors, and the residuals its forward returned."""

    __slots__ = ("wrapped", "residuals")

    def __init__(self, wrapped: tuple[bool, ...]) -> None:
        self.wrapped = wrapped
        self.residuals: Any = None

    def __repr__(self) -> str:
        return "<custom_vjp call>"


class custom_vjp:  # noqa: N801  (jax's name, used as a decorator)
    """Wrap ``fun`` so that its VJP is the one given by `defvjp` (``jax.custom_vjp``'s shape).

    ``fwd(*args)`` returns ``(output, residuals)`` (residuals: anything, typically tensors) and
    ``bwd(residuals, g)`` returns a tuple with one gradient per positional argument of ``fun``,
    each of its argument's shape, or ``None`` for no gradient. Write ``bwd`` with tapegrad ops so
    that it can be differentiated again. ``fun`` itself runs when no tape records.
    """

    # fwd and bwd as the primitive's rules use them: set by defvjp, which creates the primitive
    _fwd: Callable[..., Any]
    _bwd: Callable[..., Any]

    def __init__(self, fun: Callable[..., Tensor]) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None
        self._primitive: Primitive | None = None
        try:
            self._arg_names = list(inspect.signature(fun).parameters)
        except (TypeError, ValueError):
            self._arg_names = []

    def defvjp(self, fwd: Callable[..., tuple[Tensor, Any]], bwd: Callable[[Any, Tensor], tuple]) -> None:
        """Set the forward ``fwd(*args) -> (output, residuals)`` and backward ``bwd(residuals, g)``."""
        self.fwd, self.bwd = self._fwd, self._bwd = fwd, bwd
        doc = (inspect.getdoc(self.fun) or "").split("\n")[0] or f"custom VJP {_name(bwd)}"
        vjp = functools.partial(self._vjp)
        # what a reader of the walk (viz.explain) shows as the rule; typeshed's partial has no __wrapped__
        vjp.__wrapped__ = bwd  # type: ignore[attr-defined]
        self._primitive = Primitive(_name(self.fun), self._forward, vjp, doc=doc)

    def __call__(self, *args: Any) -> Tensor:
        """``fun(*args)``; recorded as one op whose VJP is ``bwd`` when a tape is open."""
        if self._primitive is None:
            raise TypeError(f"custom_vjp({_name(self.fun)}): no VJP defined; call {_name(self.fun)}.defvjp(fwd, bwd)")
        wrapped = tuple(isinstance(a, Tensor) for a in args)
        if not current().recording or not any(wrapped):
            return self.fun(*args)
        return self._primitive(*args, call=_Call(wrapped))

    def __repr__(self) -> str:
        return f"<custom_vjp {_name(self.fun)}>"

    # --- the primitive's forward and VJP --------------------------------------------------------
    def _run_fwd(self, args: list) -> tuple[Tensor, Any]:
        result = self._fwd(*args)
        if not isinstance(result, (tuple, list)) or len(result) != 2 or not isinstance(result[0], Tensor):
            got = type(result).__name__ if not isinstance(result, (tuple, list)) else f"a {len(result)}-tuple"
            raise TypeError(
                f"custom_vjp({_name(self.fun)}): forward {_name(self._fwd)} must return (output tg.Tensor, "
                f"residuals), got {got}"
            )
        return result[0], result[1]

    def _forward(self, *raw: Any, call: _Call) -> torch.Tensor:
        args = [wrap(a) if w else a for a, w in zip(raw, call.wrapped)]
        with no_grad():  # fwd's own ops are not the function's graph: bwd is
            out, call.residuals = self._run_fwd(args)
        return out.data

    def _vjp(self, g: Any, out: Any, *inputs: Any, call: _Call) -> tuple:
        raw = not isinstance(g, Tensor)  # first order: torch data in, torch data out
        if raw:
            residuals, g = call.residuals, wrap(g)
        else:  # the reverse walk is recorded: residuals as recorded functions of the inputs
            residuals = self._run_fwd(list(inputs))[1]
        grads = self._bwd(residuals, g)
        grads = self._checked(grads, inputs)
        return tuple(gi.data if raw and isinstance(gi, Tensor) else gi for gi in grads)

    def _checked(self, grads: Any, inputs: tuple) -> tuple:
        name, bwd = _name(self.fun), _name(self._bwd)
        if not isinstance(grads, (tuple, list)):
            raise TypeError(
                f"custom_vjp({name}): backward {bwd} returned {type(grads).__name__}; it must return a tuple "
                f"with one gradient (or None) per argument, {len(inputs)} here"
            )
        if len(grads) != len(inputs):
            raise ValueError(
                f"custom_vjp({name}): backward {bwd} returned {len(grads)} gradient{'s' * (len(grads) != 1)} "
                f"for {len(inputs)} arguments ({self._describe(inputs)}); return one gradient (or None) per argument"
            )
        checked: list[Tensor | None] = []
        for i, (gi, a) in enumerate(zip(grads, inputs)):
            if gi is None or not isinstance(a, (Tensor, torch.Tensor)):
                checked.append(None)
                continue
            if not isinstance(gi, (Tensor, torch.Tensor)):
                raise TypeError(
                    f"custom_vjp({name}): backward {bwd} returned {type(gi).__name__} {gi!r:.60} as the gradient "
                    f"of argument {self._arg(i)}; return a tensor of the argument's shape, or None"
                )
            gi = gi if isinstance(gi, Tensor) else wrap(gi)
            if gi.shape != a.shape:
                raise ValueError(
                    f"custom_vjp({name}): backward {bwd} returned a gradient of shape {tuple(gi.shape)} for "
                    f"argument {self._arg(i)} of shape {tuple(a.shape)}"
                )
            checked.append(gi)
        return tuple(checked)

    def _arg(self, i: int) -> str:
        return f"{i} ({self._arg_names[i]})" if i < len(self._arg_names) else str(i)

    def _describe(self, inputs: tuple) -> str:
        parts = []
        for i, a in enumerate(inputs):
            shape = tuple(a.shape) if isinstance(a, (Tensor, torch.Tensor)) else repr(a)
            parts.append(f"{self._arg(i)}: {shape}")
        return ", ".join(parts)
