"""rnn_recurrence: an Elman (tanh or ReLU) RNN layer's time loop as one record.

The mechanism of `gru_recurrence`: the forward runs the steps on raw torch (2 kernels a step, the
input projection done for the whole sequence by the caller); the first-order VJP takes each
step's activation derivative from the saved output for all steps at once, walks back through time
with 2 kernels a step and makes the weight gradient with one matmul. The reference VJP, the same
formulas with tapegrad ops, serves higher order.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from ._operands import raw
from .recurrent import _as_sequence, _hidden_weight_grads, _previous, _steps
from .shape import stack

__all__ = ["rnn_recurrence"]


def _forward(gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor | None,
             nonlinearity: str = "tanh", reverse: bool = False) -> torch.Tensor:  # fmt: skip
    seq = gi.unsqueeze(0) if gi.dim() == 2 else gi
    if b_hh is not None:
        seq = seq + b_hh  # once for the sequence, not once a step
    wt = w_hh.t()
    outs: list[Any] = [None] * seq.shape[0]
    h = h0
    for t in _steps(seq.shape[0], reverse):  # 2 kernels a step
        pre = torch.addmm(seq[t], h, wt)
        h = outs[t] = pre.tanh() if nonlinearity == "tanh" else pre.relu()
    return outs[0] if gi.dim() == 2 else torch.stack(outs)


def _slope(out: Any, nonlinearity: str) -> Any:
    """The activation's derivative at each step, from its output: 1 - h² for tanh, h > 0 for ReLU."""
    return 1 - out * out if nonlinearity == "tanh" else (out > 0).to(out.dtype)


def _fast_vjp(g: torch.Tensor, out: torch.Tensor, gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor,
              b_hh: torch.Tensor | None, nonlinearity: str = "tanh",
              reverse: bool = False) -> tuple[Any, ...]:  # fmt: skip
    single = gi.dim() == 2
    g, out, gi = _as_sequence(g, out, gi)
    slope = _slope(out, nonlinearity)
    dpre = torch.empty_like(out)  # each step's gradient of its pre-activation
    last: Any = None
    for t in _steps(gi.shape[0], not reverse):  # 2 kernels a step
        grad = g[t] if last is None else torch.addmm(g[t], last, w_hh)
        last = torch.mul(grad, slope[t], out=dpre[t])
    dw, db = _hidden_weight_grads(dpre, _previous(h0, out, reverse), b_hh)
    return (dpre[0] if single else dpre), last.mm(w_hh), dw, db


def _vjp(g: Any, out: Any, gi: Any, h0: Any, w_hh: Any, b_hh: Any, nonlinearity: str = "tanh",
         reverse: bool = False) -> tuple[Any, ...]:  # fmt: skip
    single = gi.dim() == 2
    g, out, gi = _as_sequence(g, out, gi)
    slope = _slope(out, nonlinearity)
    dpre: list[Any] = [None] * gi.shape[0]
    dh: Any = None
    for t in _steps(gi.shape[0], not reverse):
        dpre[t] = (g[t] if dh is None else g[t] + dh) * slope[t]
        dh = dpre[t] @ w_hh
    dpre_all = stack(dpre)
    dw, db = _hidden_weight_grads(dpre_all, _previous(h0, out, reverse), b_hh)
    return (dpre_all[0] if single else dpre_all), dh, dw, db


_rnn = primitive(
    "rnn_recurrence",
    _forward,
    _vjp,
    "rnn_recurrence(gi, h0, w_hh, b_hh, nonlinearity, reverse): an Elman RNN layer's states over time from the "
    "input projections gi (T, N, H) (one step for (N, H)), tanh or relu.",
    fast_vjp=_fast_vjp,
    saves=("inputs", "output"),  # the derivatives come from the output
)


def rnn_recurrence(
    gi: Any, h0: Any, w_hh: Any, b_hh: Any = None, nonlinearity: str = "tanh", reverse: bool = False
) -> Any:
    """The hidden states of an Elman RNN layer, one record for the whole time loop, as torch's.

    ``gi`` is the input's projection ``x W_ih^T + b_ih``: (T, N, H) for a sequence (the result is
    (T, N, H), the state after each step), or (N, H) for one step (the result is (N, H)). ``h0`` is
    the initial state (N, H), ``w_hh`` (H, H) and ``b_hh`` (H,) or None; ``nonlinearity`` is
    ``"tanh"`` or ``"relu"``; with ``reverse`` the steps run from the last position to the first.
    For each step: h' = act(gi + h W_hh^T + b_hh).
    """
    x, h, w = raw(gi), raw(h0), raw(w_hh)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_recurrence: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    size = h.shape[-1] if h.dim() == 2 else -1
    ok = h.dim() == 2 and x.dim() in (2, 3) and x.shape[-2:] == (h.shape[0], size)
    if not ok or tuple(w.shape) != (size, size) or (b_hh is not None and tuple(raw(b_hh).shape) != (size,)):
        shapes = f"gi {tuple(x.shape)}, h0 {tuple(h.shape)}, w_hh {tuple(w.shape)}"
        if b_hh is not None:
            shapes += f", b_hh {tuple(raw(b_hh).shape)}"
        raise ShapeError(
            f"rnn_recurrence: expected gi (T, N, H) or (N, H), h0 (N, H), w_hh (H, H), b_hh (H,); got {shapes} "
            f"(called at {call_site()})"
        )
    return _rnn(gi, h0, w_hh, b_hh, nonlinearity=nonlinearity, reverse=reverse)
