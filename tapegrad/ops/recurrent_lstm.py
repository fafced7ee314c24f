"""lstm_recurrence: an LSTM layer's time loop as one record (torch's i, f, g, o gates).

The same mechanism as `gru_recurrence`: the forward runs the steps on raw torch (the input
projection done for the whole sequence by the caller), the first-order VJP recomputes every gate
of every step at once from the saved inputs and output (one matmul and pointwise kernels over the
sequence), walks back through time with 5 kernels a step and makes the weight gradients with one
matmul after the loop. The reference VJP, the same formulas with tapegrad ops, serves higher order.
The output holds both states, ``[h, c]`` along the last dimension, so that one record gives both.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from ._operands import raw
from .elementwise import sigmoid, tanh
from .linalg import linear
from .recurrent import _as_sequence, _hidden_weight_grads, _previous, _steps
from .shape import cat, stack

__all__ = ["lstm_recurrence"]


def _forward(gi: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor | None,
             w_hr: torch.Tensor | None = None, reverse: bool = False) -> torch.Tensor:  # fmt: skip
    seq = gi.unsqueeze(0) if gi.dim() == 2 else gi
    size = c0.shape[-1]
    if b_hh is not None:
        seq = seq + b_hh  # once for the sequence, not once a step
    wt = w_hh.t()
    hs: list[Any] = [None] * seq.shape[0]
    cs: list[Any] = [None] * seq.shape[0]
    h, c = h0, c0
    # 7 kernels a step (8 with a projection), no out= (the registry tests differentiate this forward as a reference)
    for t in _steps(seq.shape[0], reverse):
        gates = torch.addmm(seq[t], h, wt)
        ifo = gates.sigmoid()
        g = gates[:, 2 * size : 3 * size].tanh()
        c = cs[t] = torch.addcmul(c * ifo[:, size : 2 * size], ifo[:, :size], g)
        h = ifo[:, 3 * size :] * c.tanh()
        h = hs[t] = h if w_hr is None else h.mm(w_hr.t())
    out = torch.cat([torch.stack(hs), torch.stack(cs)], -1)
    return out[0] if gi.dim() == 2 else out


def _fast_vjp(g: torch.Tensor, out: torch.Tensor, gi: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
              w_hh: torch.Tensor, b_hh: torch.Tensor | None, w_hr: torch.Tensor | None = None,
              reverse: bool = False) -> tuple[Any, ...]:  # fmt: skip
    single = gi.dim() == 2
    g, out, gi = _as_sequence(g, out, gi)
    steps, batch, size, width = gi.shape[0], gi.shape[1], c0.shape[-1], h0.shape[-1]
    h, c = out[..., :width], out[..., width:]
    prev_h, prev_c = _previous(h0, h, reverse), _previous(c0, c, reverse)
    flat = prev_h.reshape(-1, width)
    gates = (flat.mm(w_hh.t()) if b_hh is None else torch.addmm(b_hh, flat, w_hh.t())).view(gi.shape).add_(gi)
    ifo = gates.sigmoid()
    i, f, o = ifo[..., :size], ifo[..., size : 2 * size], ifo[..., 3 * size :]
    cell = gates[..., 2 * size : 3 * size].tanh()
    tc = c.tanh()
    # every factor that does not depend on the incoming gradient, for all steps at once: with a step's
    # gradients dr of o tanh(c) (dh itself, or dh w_hr with a projection) and dc of c (all paths), its
    # gates' gradients are dc * by_c[t] (i, f, g) and dr * by_h[t] (o), and dc itself takes dr * through[t]
    through = o * (1 - tc * tc)
    by_c = torch.stack([cell * i * (1 - i), prev_c * f * (1 - f), i * (1 - cell * cell)], dim=2)
    by_h = tc * o * (1 - o)
    g_h, g_c = g[..., :width], g[..., width:]
    dgates = torch.empty_like(gates)
    parts = dgates.view(steps, batch, 4, size)
    dh_all, dc_all = torch.empty_like(h), torch.empty_like(c)
    part: Any = None
    last = 0
    for t in _steps(steps, not reverse):  # 5 kernels a step (6 with a projection)
        if part is None:
            dh = dh_all[t].copy_(g_h[t])
            dr = dh if w_hr is None else dh.mm(w_hr)
            dc = torch.addcmul(g_c[t], dr, through[t], out=dc_all[t])
        else:
            dh = torch.addmm(g_h[t], part, w_hh, out=dh_all[t])
            dr = dh if w_hr is None else dh.mm(w_hr)
            dc = torch.addcmul(g_c[t], dc, f[last], out=dc_all[t]).addcmul_(dr, through[t])
        torch.mul(dc.unsqueeze(1), by_c[t], out=parts[t, :, :3])
        torch.mul(dr, by_h[t], out=parts[t, :, 3])
        part, last = dgates[t], t
    dh0 = part.mm(w_hh)
    dc0 = dc * f[last]
    dw, db = _hidden_weight_grads(dgates, flat, b_hh)
    dw_hr = None if w_hr is None else dh_all.reshape(-1, width).mT @ (o * tc).reshape(-1, size)
    return (dgates[0] if single else dgates), dh0, dc0, dw, db, dw_hr


def _vjp(g: Any, out: Any, gi: Any, h0: Any, c0: Any, w_hh: Any, b_hh: Any, w_hr: Any = None,
         reverse: bool = False) -> tuple[Any, ...]:  # fmt: skip
    single = gi.dim() == 2
    g, out, gi = _as_sequence(g, out, gi)
    steps, size, width = gi.shape[0], c0.shape[-1], h0.shape[-1]
    c = out[..., width:]
    prev_h, prev_c = _previous(h0, out[..., :width], reverse), _previous(c0, c, reverse)
    gates = linear(prev_h, w_hh, b_hh) + gi
    i, f = sigmoid(gates[..., :size]), sigmoid(gates[..., size : 2 * size])
    cell, o = tanh(gates[..., 2 * size : 3 * size]), sigmoid(gates[..., 3 * size :])
    tc = tanh(c)
    dgates: list[Any] = [None] * steps
    dhs: list[Any] = [None] * steps
    dh: Any = None
    dc: Any = None
    for t in _steps(steps, not reverse):
        grad_h = dhs[t] = g[t, :, :width] if dh is None else g[t, :, :width] + dh
        grad_r = grad_h if w_hr is None else grad_h @ w_hr
        grad_c = g[t, :, width:] + grad_r * o[t] * (1 - tc[t] * tc[t])
        grad_c = grad_c if dc is None else grad_c + dc
        d_i = grad_c * cell[t] * i[t] * (1 - i[t])
        d_f = grad_c * prev_c[t] * f[t] * (1 - f[t])
        d_g = grad_c * i[t] * (1 - cell[t] * cell[t])
        d_o = grad_r * tc[t] * o[t] * (1 - o[t])
        dgates[t] = cat([d_i, d_f, d_g, d_o], -1)
        dh = dgates[t] @ w_hh
        dc = grad_c * f[t]
    dgates_all = stack(dgates)
    dw, db = _hidden_weight_grads(dgates_all, prev_h, b_hh)
    dw_hr = None if w_hr is None else stack(dhs).reshape(-1, width).mT @ (o * tc).reshape(-1, size)
    return (dgates_all[0] if single else dgates_all), dh, dc, dw, db, dw_hr


_lstm = primitive(
    "lstm_recurrence",
    _forward,
    _vjp,
    "lstm_recurrence(gi, h0, c0, w_hh, b_hh, w_hr, reverse): an LSTM layer's states [h, c] over time from the "
    "input projections gi (T, N, 4H) (one step for (N, 4H)), torch's i, f, g, o gates; w_hr projects h.",
    fast_vjp=_fast_vjp,
    saves=("inputs", "output"),  # the gates are recomputed from them, all steps at once
)


def lstm_recurrence(
    gi: Any, h0: Any, c0: Any, w_hh: Any, b_hh: Any = None, reverse: bool = False, w_hr: Any = None
) -> Any:
    """The hidden and cell states of an LSTM layer, one record for the whole time loop, torch's gates.

    ``gi`` is the input's projection ``x W_ih^T + b_ih``: (T, N, 4H) for a sequence, or (N, 4H)
    for one step. The result is (T, N, P + H) (or (N, P + H)): each step's hidden state ``h`` in
    ``[..., :P]`` and its cell state ``c`` in ``[..., P:]``. ``h0`` (N, P) and ``c0`` (N, H) are the
    initial states, ``w_hh`` (4H, P) and ``b_hh`` (4H,) or None; with ``reverse`` the steps run from
    the last position to the first (a bidirectional layer's backward direction). For each step, with
    gates = gi + h W_hh^T + b_hh split as i, f, g, o: c' = σ(f) c + σ(i) tanh(g), h' = σ(o) tanh(c').
    Without ``w_hr``, P = H; with ``w_hr`` (P, H) the hidden state is projected, h' = (σ(o) tanh(c')) W_hr^T,
    as torch's LSTM with ``proj_size``.
    """
    x, h, c, w = raw(gi), raw(h0), raw(c0), raw(w_hh)
    size = c.shape[-1] if c.dim() == 2 else -1
    width = h.shape[-1] if w_hr is None else raw(w_hr).shape[0]
    ok = h.dim() == 2 and c.dim() == 2 and x.dim() in (2, 3) and x.shape[-2:] == (h.shape[0], 4 * size)
    ok = ok and tuple(h.shape) == (c.shape[0], width) and tuple(w.shape) == (4 * size, width)
    ok = ok and (w_hr is None or tuple(raw(w_hr).shape) == (width, size))
    if not ok or (b_hh is not None and tuple(raw(b_hh).shape) != (4 * size,)):
        shapes = f"gi {tuple(x.shape)}, h0 {tuple(h.shape)}, c0 {tuple(c.shape)}, w_hh {tuple(w.shape)}"
        for name, extra in (("b_hh", b_hh), ("w_hr", w_hr)):
            if extra is not None:
                shapes += f", {name} {tuple(raw(extra).shape)}"
        raise ShapeError(
            f"lstm_recurrence: expected gi (T, N, 4H) or (N, 4H), h0 (N, P) and c0 (N, H), w_hh (4H, P), "
            f"b_hh (4H,), w_hr (P, H) (P = H without it); got {shapes} (called at {call_site()})"
        )
    return _lstm(gi, h0, c0, w_hh, b_hh, w_hr, reverse=reverse)
