"""gru_recurrence: a GRU layer's time loop as one record (torch's gate order and formulas).

The forward runs the steps on raw torch (6 kernels a step, the input projection already
done for the whole sequence by the caller, as torch's own GRU does). The first-order VJP recomputes
the gates for every step at once from the saved input, initial state and output (one matmul and a
few pointwise kernels over the sequence), then walks back through time with 3 kernels a step,
and makes the weight gradients with one matmul after the loop. The reference VJP, the same formulas
with tapegrad ops, serves higher order.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from ._operands import raw
from .elementwise import sigmoid, tanh
from .linalg import linear
from .shape import cat, stack

__all__ = ["gru_recurrence"]

_A = torch.ops.aten
_TANH_BACKWARD: Any = _A.tanh_backward.grad_input._op
_SIGMOID_BACKWARD: Any = _A.sigmoid_backward.grad_input._op


def _steps(n: int, reverse: bool) -> range:
    return range(n - 1, -1, -1) if reverse else range(n)


def _forward(gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor | None,
             reverse: bool = False) -> torch.Tensor:  # fmt: skip
    seq = gi.unsqueeze(0) if gi.dim() == 2 else gi
    size = h0.shape[-1]
    wt = w_hh.t()
    s2 = 2 * size
    # every step's slices of the input projection made at once (unbind): no Python view calls in the loop
    x_rz, x_n = seq[..., :s2].unbind(0), seq[..., s2:].unbind(0)
    outs: list[Any] = [None] * seq.shape[0]
    h = h0
    for t in _steps(seq.shape[0], reverse):  # 6 kernels a step
        gh = h.mm(wt) if b_hh is None else torch.addmm(b_hh, h, wt)
        rz = (gh[:, :s2] + x_rz[t]).sigmoid_()
        n = torch.addcmul(x_n[t], gh[:, s2:], rz[:, :size]).tanh_()
        h = torch.lerp(n, h, rz[:, size:])  # (1 - z) n + z h
        outs[t] = h
    return outs[0] if gi.dim() == 2 else torch.stack(outs)


def _previous(h0: Any, out: Any, reverse: bool) -> Any:
    """The state each step started from, (T, N, H): h0, then the outputs one step behind."""
    first = h0.unsqueeze(0)
    if out.shape[0] == 1:
        return first
    return cat([out[1:], first]) if reverse else cat([first, out[:-1]])


def _hidden_weight_grads(dgates: Any, prev: Any, b_hh: Any) -> tuple[Any, Any]:
    """w_hh's and b_hh's gradients from every step's gradient of ``prev @ w_hh^T + b_hh`` (T, N, G):
    one matmul over all steps (raw torch or tg.Tensor alike)."""
    flat = dgates.reshape(-1, dgates.shape[-1])
    return flat.mT @ prev.reshape(-1, prev.shape[-1]), (None if b_hh is None else flat.sum(0))


def _as_sequence(g: Any, out: Any, gi: Any) -> tuple[Any, Any, Any]:
    if gi.dim() == 2:
        return g.unsqueeze(0), out.unsqueeze(0), gi.unsqueeze(0)
    return g, out, gi


def _fast_vjp(g: torch.Tensor, out: torch.Tensor, gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor,
              b_hh: torch.Tensor | None, reverse: bool = False) -> tuple[Any, ...]:  # fmt: skip
    single = gi.dim() == 2
    g, out, gi = _as_sequence(g, out, gi)
    steps, size = gi.shape[0], h0.shape[-1]
    prev = _previous(h0, out, reverse)
    flat = prev.reshape(-1, size)
    gh = (flat.mm(w_hh.t()) if b_hh is None else torch.addmm(b_hh, flat, w_hh.t())).view(gi.shape)
    rz = (gh[..., : 2 * size] + gi[..., : 2 * size]).sigmoid_()
    r, z = rz[..., :size], rz[..., size:]
    hn = gh[..., 2 * size :]
    n = torch.addcmul(gi[..., 2 * size :], hn, r).tanh_()
    # every factor that does not depend on the incoming gradient, for all steps at once: a step's
    # gradient `grad` (N, H) then gives the gradients of its gates h W_hh^T + b_hh and the part of h's
    # gradient that skips the matmul in one product, grad * factors[t] (N, 4, H)
    dn = (1 - z) * (1 - n * n)  # d h' / d(n's pre-activation), per unit of grad
    factors = torch.stack([dn * hn * r * (1 - r), (prev - n) * z * (1 - z), dn * r, z], dim=2)
    grads = torch.empty_like(out)  # each step's gradient of its output state, all paths
    parts = torch.empty_like(factors)
    # each step's views made at once (unbind), none in the loop: its output gradient (as (N, H) and (N, 1, H)),
    # factors, parts, and the parts' gate columns (N, 3H) and skip term (N, H)
    g_t, grad_t, grad_u, factor_t = g.unbind(0), grads.unbind(0), grads.unsqueeze(2).unbind(0), factors.unbind(0)
    part_t, gates_t, skip_t = (
        parts.unbind(0),
        parts[:, :, :3].view(steps, -1, 3 * size).unbind(0),
        parts[:, :, 3].unbind(0),
    )
    dh: Any = None
    for t in _steps(steps, not reverse):  # 3 kernels a step
        if dh is None:
            grad_t[t].copy_(g_t[t])
        else:
            torch.add(g_t[t], dh, out=grad_t[t])
        torch.mul(grad_u[t], factor_t[t], out=part_t[t])
        dh = torch.addmm(skip_t[t], gates_t[t], w_hh)
    dgh = parts[:, :, :3].reshape(gi.shape)
    dgi = torch.cat([dgh[..., : 2 * size], grads * dn], -1)
    dw, db = _hidden_weight_grads(dgh, flat, b_hh)
    return (dgi[0] if single else dgi), dh, dw, db


def _vjp(g: Any, out: Any, gi: Any, h0: Any, w_hh: Any, b_hh: Any, reverse: bool = False) -> tuple[Any, ...]:
    single = gi.dim() == 2
    g, out, gi = _as_sequence(g, out, gi)
    steps, size = gi.shape[0], h0.shape[-1]
    prev = _previous(h0, out, reverse)
    gh = linear(prev, w_hh, b_hh)
    r = sigmoid(gh[..., :size] + gi[..., :size])
    z = sigmoid(gh[..., size : 2 * size] + gi[..., size : 2 * size])
    hn = gh[..., 2 * size :]
    n = tanh(gi[..., 2 * size :] + hn * r)
    dgi: list[Any] = [None] * steps
    dgh: list[Any] = [None] * steps
    dh: Any = None
    for t in _steps(steps, not reverse):
        grad = g[t] if dh is None else g[t] + dh
        dn = grad * (1 - z[t]) * (1 - n[t] * n[t])
        dr = dn * hn[t] * r[t] * (1 - r[t])
        dz = grad * (prev[t] - n[t]) * z[t] * (1 - z[t])
        dgi[t] = cat([dr, dz, dn], -1)
        dgh[t] = cat([dr, dz, dn * r[t]], -1)
        dh = grad * z[t] + dgh[t] @ w_hh
    dgi_all, dgh_all = stack(dgi), stack(dgh)
    dw, db = _hidden_weight_grads(dgh_all, prev, b_hh)
    return (dgi_all[0] if single else dgi_all), dh, dw, db


_gru = primitive(
    "gru_recurrence",
    _forward,
    _vjp,
    "gru_recurrence(gi, h0, w_hh, b_hh, reverse): a GRU layer's states over time from the input projections "
    "gi (T, N, 3H) (one step for (N, 3H)), torch's r, z, n gates.",
    fast_vjp=_fast_vjp,
    saves=("inputs", "output"),  # the gates are recomputed from them, all steps at once
)


def gru_recurrence(gi: Any, h0: Any, w_hh: Any, b_hh: Any = None, reverse: bool = False) -> Any:
    """The hidden states of a GRU layer, one record for the whole time loop, with torch's gates.

    ``gi`` is the input's projection ``x W_ih^T + b_ih``: (T, N, 3H) for a sequence (the result is
    (T, N, H), the state after each step), or (N, 3H) for one step (the result is (N, H)). ``h0``
    is the initial state (N, H), ``w_hh`` (3H, H) and ``b_hh`` (3H,) or None; with ``reverse`` the
    steps run from the last position to the first (a bidirectional layer's backward direction).
    For each step: r = σ(gi_r + h W_hr^T + b_hr), z = σ(gi_z + h W_hz^T + b_hz),
    n = tanh(gi_n + r (h W_hn^T + b_hn)), h' = (1 - z) n + z h.
    """
    x, h, w = raw(gi), raw(h0), raw(w_hh)
    size = h.shape[-1] if h.dim() == 2 else -1
    ok = h.dim() == 2 and x.dim() in (2, 3) and x.shape[-2:] == (h.shape[0], 3 * size)
    ok = ok and tuple(w.shape) == (3 * size, size) and (b_hh is None or tuple(raw(b_hh).shape) == (3 * size,))
    if not ok:
        shapes = f"gi {tuple(x.shape)}, h0 {tuple(h.shape)}, w_hh {tuple(w.shape)}"
        if b_hh is not None:
            shapes += f", b_hh {tuple(raw(b_hh).shape)}"
        raise ShapeError(
            f"gru_recurrence: expected gi (T, N, 3H) or (N, 3H), h0 (N, H), w_hh (3H, H), b_hh (3H,); got {shapes} "
            f"(called at {call_site()})"
        )
    return _gru(gi, h0, w_hh, b_hh, reverse=reverse)
