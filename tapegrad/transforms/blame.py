"""Per-op blame: which primitive's VJP disagrees with finite differences of its own forward.

When `tg.gradcheck` fails on a composite function, the tape of that function is replayed record
by record: each primitive's VJP rule, evaluated at the inputs it was recorded with, is compared
with central differences of ``primitive.forward`` at those inputs. The first record whose local
Jacobian disagrees is the one to blame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch

from ..engine.errors import scope_text
from ..engine.modes import no_grad
from ..engine.op_errors import describe
from ..engine.primitives import Record
from ..engine.release import Released, keep_all
from ..engine.tape import Tape
from ..engine.tensors import Tensor

__all__ = ["Blame", "blame", "check_record"]

# Above this many Jacobian entries, a few random projections stand in for the full Jacobian.
_FULL_JACOBIAN_ENTRIES = 4096
_PROJECTIONS = 4


class Blame:
    """A record whose VJP disagrees with finite differences of its forward, for one input."""

    def __init__(self, record: Record, input_index: int, analytical: torch.Tensor, numerical: torch.Tensor) -> None:
        self.record = record
        self.input_index = input_index
        self.analytical = analytical  # (outputs, inputs) Jacobian from the VJP, or projections
        self.numerical = numerical  # the same from central differences of the forward

    @property
    def name(self) -> str:
        """The name of the primitive to blame."""
        return self.record.primitive.name

    @property
    def call_site(self) -> str:
        """Where the user's code ran the blamed op."""
        return self.record.call_site

    def __str__(self) -> str:
        r, i = self.record, self.input_index
        diff = self.analytical - self.numerical
        flat = int(diff.abs().reshape(-1).argmax())
        row, col = divmod(flat, diff.shape[1]) if diff.ndim == 2 else (0, flat)
        text = (
            f"blame: primitive {self.name!r}{scope_text(r.scope)}, recorded at {self.call_site} on inputs "
            f"{describe(r.inputs)}, has a VJP that disagrees with finite differences of its forward for "
            f"input {i}: "
        )
        if diff.ndim == 2:
            text += (
                f"d out[{row}] / d input{i}[{col}] is {self.analytical[row, col].item():.6g} from the VJP, "
                f"{self.numerical[row, col].item():.6g} numerically; max |difference| "
                f"{diff.abs().max().item():.3g} over the {diff.shape[0]}x{diff.shape[1]} Jacobian"
            )
            if diff.numel() <= 36:
                text += f"\nVJP - numerical Jacobian:\n{_matrix(diff)}"
        else:
            text += (
                f"random projections v.J.u are {_vector(self.analytical)} from the VJP, "
                f"{_vector(self.numerical)} numerically"
            )
        return text


def _matrix(m: torch.Tensor) -> str:
    return "\n".join("  [" + ", ".join(f"{v:9.4f}" for v in row.tolist()) + "]" for row in m)


def _vector(v: torch.Tensor) -> str:
    return "[" + ", ".join(f"{x:.6g}" for x in v.tolist()) + "]"


def blame(
    f: Callable, inputs: Sequence[Tensor], eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3
) -> Blame | None:
    """Record ``f(*inputs)`` and return the first record whose local VJP is wrong, or None.

    Only records whose floating point tensors are all float64 are checked (finite differences
    in lower precision would blame correct rules).
    """
    with keep_all(Tape(persistent=True)) as tape:  # finite differences run each record's forward again
        tape.watch(*inputs)
        f(*inputs)
    for record in tape.records:
        found = check_record(record, eps, atol, rtol)
        if found is not None:
            return found
    return None


def check_record(record: Record, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> Blame | None:
    """Compare one record's VJP with central differences of its forward at the recorded inputs.

    Records whose inputs the tape released (no VJP saved them) are not checked; `blame` records
    with a tape that keeps every value.
    """
    prim = record.primitive
    args = [a.data if isinstance(a, Tensor) else a for a in record.inputs]
    if any(isinstance(a, Released) for a in args):
        return None
    floats = [i for i, a in enumerate(record.inputs) if isinstance(a, Tensor) and a.data.is_floating_point()]
    if not prim.differentiable or not floats:
        return None
    if any(args[i].dtype != torch.float64 for i in floats) or any(o.dtype != torch.float64 for o in record.outputs):
        return None
    with no_grad():  # the rules then run on raw torch: nothing records, nothing is checked for NaN
        out = prim.forward(*args, **record.params)
        for i in floats:
            if prim.vjps is not None and prim.vjps[i] is None:
                continue
            found = _check_input(record, args, out, i, eps, atol, rtol)
            if found is not None:
                return found
    return None


def _vjp(record: Record, args: list, out: Any, i: int, g: Any) -> torch.Tensor:
    prim = record.primitive
    if prim.vjps is not None:
        gi = prim.vjps[i](g, out, *args, **record.params)
    else:  # a differentiable primitive without per-input rules has the one rule
        gi = cast(Callable[..., Any], prim.vjp)(g, out, *args, **record.params)[i]
    if gi is None:
        return torch.zeros_like(args[i])
    gi = gi.data if isinstance(gi, Tensor) else torch.as_tensor(gi)
    return gi.expand(args[i].shape)


def _forward_at(record: Record, args: list, i: int, value: torch.Tensor) -> torch.Tensor:
    moved = list(args)
    moved[i] = value
    return _flat(record.primitive.forward(*moved, **record.params))


def _flat(out: Any) -> torch.Tensor:
    """An output's values in one vector (a multi-output primitive's, one after the other)."""
    return torch.cat([o.reshape(-1) for o in out]) if isinstance(out, tuple) else out.reshape(-1)


def _shaped(flat: torch.Tensor, out: Any) -> Any:
    """A vector of the output's size as a cotangent of its shape (a tuple for a multi-output primitive)."""
    if not isinstance(out, tuple):
        return flat.reshape(out.shape)
    return tuple(p.reshape(o.shape) for p, o in zip(flat.split([o.numel() for o in out]), out))


def _check_input(record: Record, args: list, out: Any, i: int, eps: float, atol: float, rtol: float) -> Blame | None:
    x = args[i]
    n_in, n_out = x.numel(), _flat(out).numel()
    if n_in * n_out <= _FULL_JACOBIAN_ENTRIES:
        numerical = torch.empty(n_out, n_in, dtype=torch.float64)
        flat = x.detach().clone().reshape(-1)
        for j in range(n_in):
            step = torch.zeros_like(flat)
            step[j] = eps
            plus = _forward_at(record, args, i, (flat + step).reshape(x.shape))
            minus = _forward_at(record, args, i, (flat - step).reshape(x.shape))
            numerical[:, j] = (plus - minus) / (2 * eps)
        analytical = torch.empty(n_out, n_in, dtype=torch.float64)
        for k in range(n_out):
            g = torch.zeros(n_out, dtype=torch.float64)
            g[k] = 1
            analytical[k] = _vjp(record, args, out, i, _shaped(g, out)).reshape(-1)
    else:
        gen = torch.Generator().manual_seed(0)
        numerical = torch.empty(_PROJECTIONS, dtype=torch.float64)
        analytical = torch.empty(_PROJECTIONS, dtype=torch.float64)
        for p in range(_PROJECTIONS):
            u = torch.randn(x.shape, generator=gen, dtype=torch.float64)
            v = torch.randn(n_out, generator=gen, dtype=torch.float64)
            plus = _forward_at(record, args, i, x + eps * u)
            minus = _forward_at(record, args, i, x - eps * u)
            numerical[p] = torch.dot(v.reshape(-1), (plus - minus) / (2 * eps))
            analytical[p] = torch.dot(_vjp(record, args, out, i, _shaped(v, out)).reshape(-1), u.reshape(-1))
    if bool(torch.isclose(analytical, numerical, rtol=rtol, atol=atol).all()):
        return None
    return Blame(record, i, analytical, numerical)


def explain(f: Callable, inputs: Sequence[Tensor], eps: float, atol: float, rtol: float) -> str:
    """The blame paragraph `tg.gradcheck` appends to its error (never raises)."""
    try:
        found = blame(f, inputs, eps, atol, rtol)
    except Exception as err:  # the diagnosis must not hide the gradcheck failure it explains
        return f"blame: could not check the primitives one by one ({type(err).__name__}: {err})"
    if found is None:
        return (
            "blame: every primitive's VJP agrees with finite differences at its recorded inputs; the "
            "error comes from how they are combined (values computed outside the tape, e.g. through "
            ".data or .item(), or a point where the function is not differentiable)"
        )
    return str(found)
