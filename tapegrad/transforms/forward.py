"""Forward mode from the reverse-mode rules: `jvp`, `jacfwd` and `hvp` (the conventions of PyTorch's func module).

No primitive has a forward-mode rule. The VJP of ``f`` at ``x``, ``u -> J^T u``, is linear in
the cotangent ``u``, and every VJP rule is written with tapegrad ops, so a tape can record it.
Record ``u -> J^T u`` on a tape that watches ``u`` (at ``u = 0``: the value does not matter for a
linear map), form ``<J^T u, t>`` and differentiate it with respect to ``u``: that gives
``J t``, the JVP (the "transpose trick", or double VJP). So every primitive whose VJP is
differentiable, the registry's and a user's own, gets forward mode without a rule of its own.

Cost: one forward pass of ``f``, one recorded reverse pass (the VJP) and one reverse pass over
that recording per tangent, so about three reverse passes' worth of work for one `jvp` where a
dedicated forward rule would take about one. `jacfwd` pays the first two once and the last one
per input element, so it beats `tg.jacobian` (one reverse pass per output element) when a
function has fewer inputs than outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..engine.errors import ShapeError
from ..engine.modes import enable_grad
from ..engine.tape import Tape
from ..engine.tensors import Tensor
from ..ops import reshape, stack
from ..ops import sum as _sum
from .functional import _gradients, check_argnums, value_and_grad

__all__ = ["jvp", "jacfwd", "hvp"]


def _name(f: Callable) -> str:
    return getattr(f, "__name__", type(f).__name__)


def _as_primal(x: Any, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        x = Tensor(x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.get_default_dtype()))
    if not x.data.is_floating_point():
        raise TypeError(f"{what} is a {x.dtype} tensor; forward mode needs floating point inputs")
    return x


def _outputs(result: Any, f: Callable, has_aux: bool) -> tuple[tuple[Tensor, ...], bool, Any]:
    """(outputs as a tuple, whether f returned a single tensor, aux) with f's result checked."""
    aux = None
    if has_aux:
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise TypeError(f"{_name(f)}: has_aux=True needs f to return (output, aux), got {type(result).__name__}")
        result, aux = result
    single = isinstance(result, Tensor)
    outs = (result,) if single else tuple(result) if isinstance(result, (tuple, list)) else None
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        got = type(result).__name__ if outs is None else ", ".join(type(o).__name__ for o in outs) or "()"
        raise TypeError(f"{_name(f)} must return a tg.Tensor or a tuple of them for forward mode, got {got}")
    return outs, single, aux


class _Linearized:
    """``f`` recorded at the primals, and its VJP recorded as a function of watched cotangents.

    ``grads[i]`` is ``J_i^T u`` (``None`` where the outputs do not depend on primal ``i``); the
    JVP of a tangent is the gradient of ``<grads, tangent>`` with respect to ``cotangents``.
    """

    def __init__(self, f: Callable, primals: tuple[Tensor, ...], has_aux: bool) -> None:
        forward_tape = Tape(persistent=True)
        with forward_tape:
            forward_tape.watch(*primals)
            self.outs, self.single, self.aux = _outputs(f(*primals), f, has_aux)
            self.cotangents = tuple(Tensor(torch.zeros_like(o.data)) for o in self.outs)
            if len(self.outs) == 1:
                target, seed = self.outs[0], self.cotangents[0]
            else:  # one reverse pass for every output: the VJP of sum_k <out_k, u_k>
                target, seed = _inner(self.outs, self.cotangents), None
        self.tape = Tape(persistent=True)
        with self.tape:
            self.tape.watch(*self.cotangents)
            self.grads = _gradients(forward_tape, target, primals, grad_output=seed)

    def push(self, target: Tensor | None, grad_output: Tensor | None = None) -> tuple[Tensor | None, ...]:
        """The gradient of ``target`` (a function of the cotangents) per output; None for no dependence."""
        if target is None:
            return (None,) * len(self.outs)
        return _gradients(self.tape, target, self.cotangents, grad_output=grad_output)

    def inner(self, terms: list[tuple[Tensor, Tensor]]) -> Tensor | None:
        """``sum_i <grads_i, t_i>`` recorded on the cotangents' tape (None for no terms)."""
        if not terms:
            return None
        with self.tape:
            return _inner([g for g, _ in terms], [t for _, t in terms])

    def zeros(self, k: int) -> Tensor:
        """A zero tangent of output ``k``."""
        return Tensor(torch.zeros_like(self.outs[k].data))


def _inner(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> Tensor:
    total = _sum(xs[0] * ys[0])  # the function Tensor.sum is (attached at import: unknown to type checkers)
    for x, y in zip(xs[1:], ys[1:]):
        total = total + _sum(x * y)
    return total


def _check_tangents(f: Callable, primals: tuple[Tensor, ...], tangents: Any, caller: str) -> tuple[Tensor, ...]:
    name = f"{caller}({_name(f)})"
    if not isinstance(tangents, (Tensor, torch.Tensor, tuple, list)):
        raise TypeError(
            f"{name}: tangents must be a tensor or a tuple of tensors, one per primal, got {type(tangents).__name__}"
        )
    tangents = (tangents,) if isinstance(tangents, (Tensor, torch.Tensor)) else tuple(tangents)
    for i, t in enumerate(tangents):
        if not isinstance(t, (Tensor, torch.Tensor, int, float)) or isinstance(t, bool):
            raise TypeError(f"{name}: tangents[{i}] must be a tensor, got {type(t).__name__} {t!r:.40}")
    if len(tangents) != len(primals):
        raise ValueError(f"{name}: got {len(tangents)} tangents for {len(primals)} primals; pass one per primal")
    checked = []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        t = t if isinstance(t, Tensor) else Tensor(torch.as_tensor(t, dtype=p.dtype))
        if t.shape != p.shape:
            raise ShapeError(
                f"{name}: tangents[{i}] has shape {tuple(t.shape)} but primals[{i}] has shape "
                f"{tuple(p.shape)}; a tangent has its primal's shape"
            )
        if t.dtype != p.dtype:
            raise TypeError(
                f"{name}: tangents[{i}] has dtype {t.dtype} but primals[{i}] has dtype {p.dtype} "
                f"(shapes {tuple(t.shape)} and {tuple(p.shape)}); a tangent has its primal's dtype"
            )
        checked.append(t)
    return tuple(checked)


def _primals(f: Callable, primals: Any, caller: str) -> tuple[Tensor, ...]:
    primals = (primals,) if isinstance(primals, (Tensor, torch.Tensor)) else tuple(primals)
    return tuple(_as_primal(p, f"{caller}({_name(f)}): primals[{i}]") for i, p in enumerate(primals))


def jvp(f: Callable, primals: Any, tangents: Any, *, has_aux: bool = False) -> tuple:
    """``(f(*primals), J @ tangents)``: the Jacobian-vector product, as PyTorch's ``func.jvp``.

    ``primals`` and ``tangents`` are tuples with one tensor each per argument of ``f`` (a single
    tensor is taken as a 1-tuple); each tangent has its primal's shape and dtype. ``f`` returns a
    tensor or a tuple of tensors, and the tangent output has the same structure. With
    ``has_aux=True`` ``f`` returns ``(output, aux)`` and the result is ``(output, jvp_out, aux)``.
    Derived from the VJP rules by the transpose trick (see this module); an open outer tape
    records the computation, so the result can be differentiated again.
    """
    ps = _primals(f, primals, "jvp")
    ts = _check_tangents(f, ps, tangents, "jvp")
    with enable_grad():  # forward mode is not reverse-mode recording: it works under no_grad too
        return _jvp(f, ps, ts, has_aux)


def _jvp(f: Callable, ps: tuple[Tensor, ...], ts: tuple[Tensor, ...], has_aux: bool) -> tuple:
    lin = _Linearized(f, ps, has_aux)
    terms = [(g, t) for g, t in zip(lin.grads, ts) if g is not None]
    if len(terms) == 1:  # the tangent is the reverse pass's seed: no extra ops
        pushed = lin.push(terms[0][0], terms[0][1])
    else:
        pushed = lin.push(lin.inner(terms))
    tangent_out = tuple(lin.zeros(k) if t is None else t for k, t in enumerate(pushed))
    out = lin.outs[0] if lin.single else lin.outs
    result = (out, tangent_out[0] if lin.single else tangent_out)
    return (*result, lin.aux) if has_aux else result


def jacfwd(f: Callable, argnums: int | Sequence[int] = 0, *, has_aux: bool = False) -> Callable:
    """The function computing the Jacobian of ``f`` by forward mode, as PyTorch's ``func.jacfwd``.

    The Jacobian of an output with respect to an argument has shape ``out.shape + arg.shape``; a
    tuple ``argnums`` gives a tuple (one per argument), a tuple output a tuple (one per output)
    of those. ``f`` is run and its VJP recorded once; then one reverse pass over that recording
    per element of the differentiated arguments: cheaper than `tg.jacobian` when the inputs have
    fewer elements than the outputs.
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def jacfwd_f(*args: Any) -> Any:
        check_argnums("jacfwd", argnums, args)
        values = list(args)
        for i in nums:
            values[i] = _as_primal(values[i], f"jacfwd({_name(f)}): argument {i}")
        ps = tuple(values[i] for i in nums)

        def g(*xs: Tensor) -> Any:
            full = list(values)
            for i, x in zip(nums, xs):
                full[i] = x
            return f(*full)

        g.__name__ = _name(f)
        with enable_grad():
            lin = _Linearized(g, ps, has_aux)
            jacs = [[_columns(lin, k, grad, p) for grad, p in zip(lin.grads, ps)] for k in range(len(lin.outs))]
        per_out = [row[0] if isinstance(argnums, int) else tuple(row) for row in jacs]
        jac = per_out[0] if lin.single else tuple(per_out)
        return (jac, lin.aux) if has_aux else jac

    jacfwd_f.__doc__ = f"Jacobian of {_name(f)} with respect to argument(s) {argnums}, by forward mode."
    return jacfwd_f


def _columns(lin: _Linearized, k: int, grad: Tensor | None, primal: Tensor) -> Tensor:
    """d out_k / d primal, of shape out_k.shape + primal.shape: one reverse pass per column."""
    out = lin.outs[k]
    n = primal.numel()
    if grad is None or n == 0:
        return Tensor(torch.zeros((*out.shape, *primal.shape), dtype=out.dtype, device=out.device))
    columns = []
    for j in range(n):
        basis = torch.zeros(n, dtype=primal.dtype, device=primal.device)
        basis[j] = 1
        pushed = lin.push(grad, Tensor(basis.reshape(primal.shape)))[k]
        columns.append(lin.zeros(k) if pushed is None else pushed)
    return reshape(stack(columns, dim=-1), (*out.shape, *primal.shape))


def hvp(f: Callable, primals: Any, tangents: Any) -> tuple[Tensor, Any]:
    """``(f(*primals), H @ tangents)`` for scalar-valued ``f``: the Hessian-vector product.

    As PyTorch's ``autograd.functional.hvp`` (``primals`` a tensor or a tuple, the product with the
    same structure); in PyTorch's func terms it is ``jvp(grad(f, argnums=all), primals, tangents)``,
    and that is how it is computed: forward mode over reverse mode, never forming the Hessian.
    """
    single = isinstance(primals, (Tensor, torch.Tensor))
    ps = _primals(f, primals, "hvp")
    ts = _check_tangents(f, ps, tangents, "hvp")
    nums = tuple(range(len(ps)))

    def gradient_and_value(*xs: Tensor) -> tuple:
        value, grads = value_and_grad(f, argnums=nums)(*xs)
        return grads, value

    gradient_and_value.__name__ = _name(f)
    _, products, value = jvp(gradient_and_value, ps, ts, has_aux=True)
    return value, products[0] if single else products
