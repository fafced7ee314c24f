"""`tg.gradcheck`: the tape's gradients against central finite differences, in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..engine.errors import GradcheckError
from ..engine.tape import Tape
from ..engine.tensors import Tensor
from .blame import explain

__all__ = ["gradcheck", "numerical_jacobian", "analytical_jacobian"]


def _float64_inputs(inputs: Any) -> tuple[Tensor, ...]:
    items = (inputs,) if isinstance(inputs, (Tensor, torch.Tensor)) else tuple(inputs)
    out = []
    for x in items:
        data = x.data if isinstance(x, Tensor) else torch.as_tensor(x)
        out.append(Tensor(data.detach().to(torch.float64).clone(memory_format=torch.contiguous_format)))
    return tuple(out)


def _flat_output(f: Callable, xs: Sequence[Tensor]) -> torch.Tensor:
    out = f(*xs)
    data = out.data if isinstance(out, Tensor) else torch.as_tensor(out)
    # a copy: an output that is a view of an input (reshape, expand) would change with the next step
    return data.detach().reshape(-1).to(torch.float64, copy=True)


def numerical_jacobian(f: Callable, inputs: Sequence[Tensor], eps: float = 1e-6) -> list[torch.Tensor]:
    """Central-difference Jacobians d out / d input_i, each of shape (out.numel(), input.numel())."""
    xs = _float64_inputs(inputs)
    jacs = []
    for x in xs:
        flat = x.data.view(-1)
        cols = []
        for j in range(flat.numel()):
            saved = flat[j].item()
            flat[j] = saved + eps
            plus = _flat_output(f, xs)
            flat[j] = saved - eps
            minus = _flat_output(f, xs)
            flat[j] = saved
            cols.append((plus - minus) / (2 * eps))
        n_out = _flat_output(f, xs).numel()
        jacs.append(torch.stack(cols, dim=1) if cols else torch.zeros(n_out, 0, dtype=torch.float64))
    return jacs


def analytical_jacobian(f: Callable, inputs: Sequence[Tensor]) -> list[torch.Tensor]:
    """Jacobians from the tape: one reverse replay per output element."""
    xs = _float64_inputs(inputs)
    with Tape(persistent=True) as tape:
        tape.watch(*xs)
        out = f(*xs)
    if not isinstance(out, Tensor):
        raise GradcheckError(f"gradcheck: f must return a tg.Tensor, got {type(out).__name__}")
    n = out.numel()
    rows: list[list[torch.Tensor]] = [[] for _ in xs]
    if not any(out is x for x in xs) and not any(o is out for r in tape for o in r.outputs):
        n = 0  # f is constant in its inputs: the Jacobian is zero
    for k in range(n):
        onehot = torch.zeros(n, dtype=out.dtype, device=out.device)
        onehot[k] = 1
        grads = tape.gradient(out, xs, grad_output=Tensor(onehot.reshape(out.shape)), allow_unused=True)
        for i, (x, g) in enumerate(zip(xs, grads)):
            rows[i].append(torch.zeros(x.numel(), dtype=torch.float64) if g is None else g.data.reshape(-1))
    return [torch.stack(r) if r else torch.zeros(out.numel(), x.numel(), dtype=torch.float64) for x, r in zip(xs, rows)]


def gradcheck(
    f: Callable,
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Compare the tape's gradients of ``f`` with central finite differences, in float64.

    Returns True, or raises `tg.GradcheckError` naming the input, the output and input index,
    and both values, followed by the per-op blame: the first primitive of ``f``'s tape whose VJP
    disagrees with finite differences of its forward at its recorded inputs (`tapegrad.transforms.blame`).
    Inputs are copied to float64, so ``f`` must accept float64 tensors.
    """
    xs = _float64_inputs(inputs)
    numeric = numerical_jacobian(f, xs, eps)
    analytic = analytical_jacobian(f, xs)
    for i, (num, ana) in enumerate(zip(numeric, analytic)):
        bad = ~torch.isclose(ana, num, rtol=rtol, atol=atol)
        if bool(bad.any()):
            out_i, in_i = (int(v) for v in bad.nonzero()[0])
            index = tuple(int(v) for v in torch.unravel_index(torch.tensor(in_i), xs[i].shape)) if xs[i].ndim else ()
            raise GradcheckError(
                f"gradcheck: gradient of output element {out_i} with respect to input {i} at index "
                f"{index}: numerical {num[out_i, in_i].item():.8g}, analytical {ana[out_i, in_i].item():.8g} "
                f"(atol={atol}, rtol={rtol}); {int(bad.sum())} of {bad.numel()} entries differ\n"
                + explain(f, _float64_inputs(xs), eps, atol, rtol)
            )
    return True
