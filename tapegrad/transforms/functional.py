"""Function transforms built on `Tape`: grad, value_and_grad, vjp, jacobian, hessian."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, overload

import torch

from ..engine.errors import IndexShapeError, TapeError, call_site
from ..engine.tape import Tape
from ..engine.tensors import Tensor
from ..ops import reshape, stack

__all__ = ["grad", "value_and_grad", "vjp", "jacobian", "hessian"]


def _as_tensor(x: Any, what: str = "grad: the argument") -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(
            f"{what} must be a tensor or a number, got {type(x).__name__} {x!r:.40} (called at {call_site()})"
        )
    return Tensor(torch.as_tensor(x, dtype=torch.get_default_dtype()))


def check_argnums(caller: str, argnums: Any, args: tuple) -> tuple[int, ...]:
    """``argnums`` as a tuple of argument indices, each checked against the ``args`` of this call."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(
                f"{caller}: argnums must be an int or a tuple of ints, got {argnums!r} (called at {call_site()})"
            )
        if not -len(args) <= i < len(args):
            raise IndexShapeError(
                f"{caller}: argnums={argnums!r} but the function was called with {len(args)} positional "
                f"argument{'s' * (len(args) != 1)} (called at {call_site()})"
            )
    return nums


def _gradients(tape: Tape, out: Tensor, sources: Sequence[Tensor], grad_output: Any = None) -> tuple:
    """``tape.gradient`` with ``allow_unused=True``; an output that does not depend on the sources
    at all (a constant, or a linear function's derivative) gives None for each of them."""
    if not any(out is s for s in sources) and not any(o is out for r in tape for o in r.outputs):
        return (None,) * len(sources)
    return tape.gradient(out, sources, grad_output=grad_output, allow_unused=True)


def _value_and_grads(f: Callable, args: tuple, argnums: int | Sequence[int]) -> tuple[Any, Any]:
    nums = check_argnums("grad", argnums, args)
    values = list(args)
    for i in nums:
        values[i] = _as_tensor(values[i], f"grad: argument {i}")
    with Tape() as tape:
        tape.watch(*(values[i] for i in nums))
        out = f(*values)
    if not isinstance(out, Tensor) or out.numel() != 1:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise TapeError(f"grad: f must return a one-element tg.Tensor, got {shape}; use tg.vjp or tg.jacobian")
    grads = _gradients(tape, out, [values[i] for i in nums])
    grads = tuple(torch.zeros_like(values[i].data) if g is None else g for i, g in zip(nums, grads))
    grads = tuple(Tensor(g) if isinstance(g, torch.Tensor) else g for g in grads)
    return out, grads[0] if isinstance(argnums, int) else grads


P = ParamSpec("P")


@overload
def grad(f: Callable[P, Any], argnums: int = 0) -> Callable[P, Tensor]: ...
@overload
def grad(f: Callable[P, Any], argnums: Sequence[int]) -> Callable[P, tuple[Tensor, ...]]: ...


def grad(f: Callable[P, Any], argnums: int | Sequence[int] = 0) -> Callable[P, Any]:
    """The function computing the gradient of scalar-valued ``f`` with respect to ``args[argnums]``.

    Compose it for higher derivatives: ``tg.grad(tg.grad(f))``. A tuple ``argnums`` gives a tuple.
    """

    def grad_f(*args: P.args, **kwargs: P.kwargs) -> Any:
        return _value_and_grads(f, args, argnums)[1]

    grad_f.__doc__ = f"Gradient of {getattr(f, '__name__', 'f')} with respect to argument(s) {argnums}."
    return grad_f


@overload
def value_and_grad(f: Callable[P, Any], argnums: int = 0) -> Callable[P, tuple[Tensor, Tensor]]: ...
@overload
def value_and_grad(f: Callable[P, Any], argnums: Sequence[int]) -> Callable[P, tuple[Tensor, tuple[Tensor, ...]]]: ...


def value_and_grad(f: Callable[P, Any], argnums: int | Sequence[int] = 0) -> Callable[P, tuple[Any, Any]]:
    """Like `grad`, but the function returns ``(f(*args), gradient)``."""

    def value_and_grad_f(*args: P.args, **kwargs: P.kwargs) -> tuple[Any, Any]:
        return _value_and_grads(f, args, argnums)

    return value_and_grad_f


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Tensor, Callable[[Any], tuple[Tensor, ...]]]:
    """``(f(*primals), vjp_fn)`` where ``vjp_fn(v)`` returns the tuple of v^T J, one per primal."""
    primals = tuple(_as_tensor(p) for p in primals)
    tape = Tape(persistent=True)
    with tape:
        tape.watch(*primals)
        out = f(*primals)

    def vjp_fn(cotangent: Any) -> tuple[Tensor, ...]:
        v = cotangent if isinstance(cotangent, Tensor) else Tensor(torch.as_tensor(cotangent))
        grads = _gradients(tape, out, primals, grad_output=v)
        return tuple(Tensor(torch.zeros_like(p.data)) if g is None else g for p, g in zip(primals, grads))

    return out, vjp_fn


@overload
def jacobian(f: Callable[..., Any], inputs: tuple[Any, ...] | list[Any]) -> tuple[Tensor, ...]: ...
@overload
def jacobian(f: Callable[..., Any], inputs: Any) -> Tensor: ...


def jacobian(f: Callable[..., Any], inputs: Any) -> Tensor | tuple[Tensor, ...]:
    """The Jacobian of ``f`` at ``inputs``, of shape ``out.shape + input.shape``.

    ``inputs`` is a tensor or a tuple of tensors (then a tuple of Jacobians). Rows are computed
    with tapegrad ops, so an open outer tape can differentiate the Jacobian again.
    """
    single = not isinstance(inputs, (tuple, list))
    xs = (inputs,) if single else tuple(inputs)
    out, vjp_fn = vjp(f, *xs)
    n = out.numel()
    rows: list[list[Tensor]] = [[] for _ in xs]
    for k in range(n):
        onehot = torch.zeros(n, dtype=out.dtype, device=out.device)
        onehot[k] = 1
        for i, g in enumerate(vjp_fn(Tensor(onehot.reshape(out.shape)))):
            rows[i].append(g)
    jacs = []
    for x, r in zip(xs, rows):
        j = stack(r) if r else Tensor(torch.zeros((0, *x.shape), dtype=x.dtype, device=x.device))
        jacs.append(reshape(j, (*out.shape, *x.shape)))
    return jacs[0] if single else tuple(jacs)


@overload
def hessian(f: Callable[..., Any], x: tuple[Any, ...] | list[Any]) -> tuple[Tensor, ...]: ...
@overload
def hessian(f: Callable[..., Any], x: Any) -> Tensor: ...


def hessian(f: Callable[..., Any], x: Any) -> Tensor | tuple[Tensor, ...]:
    """The Hessian of scalar-valued ``f`` at ``x``: the Jacobian of its gradient."""
    return jacobian(grad(f), x)
