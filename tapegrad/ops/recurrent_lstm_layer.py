"""lstm_layer: a whole LSTM layer (input projection and time loop) as one record on oneDNN's kernels.

On CPU in float32 (and bfloat16), with oneDNN available and enabled, the forward is aten's
``mkldnn_rnn_layer`` and the first-order VJP ``mkldnn_rnn_layer_backward``, the kernels torch's own
``nn.LSTM`` runs there; the kernel's workspace is kept as a residual. Elsewhere (float64, no oneDNN)
the forward is `lstm_recurrence`'s step loop on raw torch, whose every-step states are kept as the
residual for its fast rule. The reference VJP, in tapegrad ops through `lstm_recurrence`'s
reference rule, serves higher order. It is a multi-output primitive: one record gives every step's
``h`` (T, N, H) and the final ``h_n`` and ``c_n`` (1, N, H), as one layer of torch's LSTM; an output
nobody used gets no gradient (the kernel's backward takes None for it).

A step captured for inductor (fake tensors) calls both kernels as opaque ops (`onednn`):
the compiled step runs oneDNN's layer and its backward as they are, and inductor fuses the rest.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from ..engine.tensors import Tensor
from . import onednn
from . import recurrent_lstm as _rec
from ._operands import raw
from .linalg import linear
from .shape import cat

__all__ = ["lstm_layer"]

_KERNEL_DTYPES = (torch.float32, torch.bfloat16)


def _on_kernel(x: torch.Tensor) -> bool:
    """Whether oneDNN's layer kernel runs ``x``: the conditions torch's own LSTM checks (no projection here).

    On fake tensors (a step captured for inductor) too: `onednn` calls it as an opaque op."""
    return (
        x.dtype in _KERNEL_DTYPES
        and x.device.type == "cpu"
        and x.numel() > 0
        and torch.backends.mkldnn.is_available()
        and bool(torch._C._get_mkldnn_enabled())
    )


def _biases(w_hh: torch.Tensor, b_ih: torch.Tensor | None, b_hh: torch.Tensor | None) -> tuple[Any, Any]:
    zeros = None if b_ih is not None and b_hh is not None else w_hh.new_zeros(w_hh.shape[0])
    return (zeros if b_ih is None else b_ih), (zeros if b_hh is None else b_hh)


def _kernel(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any, reverse: bool,
            train: bool) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:  # fmt: skip
    """((every h (T, N, H), h_n, c_n (1, N, H)), oneDNN's workspace) from ``mkldnn_rnn_layer``."""
    bi, bh = _biases(w_hh, b_ih, b_hh)
    has_bias = b_ih is not None or b_hh is not None
    # the kernel reads its operands as dense row-major memory: a strided view would be read wrongly
    operands = (x.contiguous(), w_ih.contiguous(), w_hh.contiguous(), bi.contiguous(), bh.contiguous(),
                h0.contiguous(), c0.contiguous())  # fmt: skip
    hs, hy, cy, ws = onednn.lstm_layer(*operands, reverse, has_bias, train)
    return (hs, hy.unsqueeze(0), cy.unsqueeze(0)), ws


def _loop(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any, reverse: bool) -> tuple[Any, Any]:
    """((every h (T, N, H), h_n, c_n (1, N, H)), every step's [h, c] (T, N, 2H)) from `lstm_recurrence`'s loop."""
    states = _rec._forward(linear(x, w_ih, b_ih), h0, c0, w_hh, b_hh, None, reverse)
    size, last = h0.shape[-1], states[0 if reverse else -1, None]
    return (states[..., :size], last[..., :size], last[..., size:]), states


def _forward(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor | None,
             b_hh: torch.Tensor | None, h0: torch.Tensor, c0: torch.Tensor, reverse: bool = False,
             batch_first: bool = False) -> tuple[torch.Tensor, ...]:  # fmt: skip
    if batch_first:  # the time-major layer on views: the kernel's copy of x is its only copy (as torch's)
        out, h, c = _forward(x.transpose(0, 1), w_ih, w_hh, b_ih, b_hh, h0, c0, reverse)
        return out.transpose(0, 1), h, c
    if _on_kernel(x):
        return _kernel(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, False)[0]
    return _loop(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse)[0]


def _residuals(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor | None,
               b_hh: torch.Tensor | None, h0: torch.Tensor, c0: torch.Tensor, reverse: bool = False,
               batch_first: bool = False) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor]]:  # fmt: skip
    """The outputs and what the fast rule reuses: oneDNN's workspace (bytes), or the loop's every-step states."""
    if batch_first:
        (out, h, c), residuals = _residuals(x.transpose(0, 1), w_ih, w_hh, b_ih, b_hh, h0, c0, reverse)
        return (out.transpose(0, 1), h, c), residuals
    outs, kept = (_kernel(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, True) if _on_kernel(x)
                  else _loop(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse))  # fmt: skip
    return outs, (kept,)


def _fast_vjp(g: tuple, out: tuple, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
              b_ih: torch.Tensor | None, b_hh: torch.Tensor | None, h0: torch.Tensor, c0: torch.Tensor,
              *saved: torch.Tensor, reverse: bool = False, batch_first: bool = False) -> tuple[Any, ...]:  # fmt: skip
    (g_out, g_h, g_c), (hs, hy, cy) = g, out  # (a cotangent is None for an output nobody used)
    if batch_first:  # the time-major rule on views; x's gradient back to (N, T, I)
        g_out = None if g_out is None else g_out.transpose(0, 1)
        t = ((g_out, g_h, g_c), (hs.transpose(0, 1), hy, cy), x.transpose(0, 1))
        dx, *grads = _fast_vjp(*t, w_ih, w_hh, b_ih, b_hh, h0, c0, *saved, reverse=reverse)
        return dx.transpose(0, 1), *grads
    size = h0.shape[-1]
    kept = saved[0] if saved else None  # none from a record that keeps everything (tg.trace's)
    if kept is None and _on_kernel(x) or kept is not None and kept.dtype == torch.uint8:  # oneDNN's workspace
        ws = _kernel(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, True)[1] if kept is None else kept
        bi, bh = _biases(w_hh, b_ih, b_hh)
        dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 = onednn.lstm_layer_backward(
            x.contiguous(), w_ih.contiguous(), w_hh.contiguous(), bi.contiguous(), bh.contiguous(), h0.contiguous(),
            c0.contiguous(), hs.contiguous(), hy[0], cy[0], None if g_out is None else g_out.contiguous(),
            None if g_h is None else g_h[0].contiguous(), None if g_c is None else g_c[0].contiguous(), ws, reverse,
            b_ih is not None or b_hh is not None,
        )  # fmt: skip
        return dx, dw_ih, dw_hh, (None if b_ih is None else db_ih), (None if b_hh is None else db_hh), dh0, dc0
    states = _loop(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse)[1] if kept is None else kept
    g_states = torch.zeros_like(states)
    last = g_states[0 if reverse else -1]
    if g_out is not None:
        g_states[..., :size] = g_out
    if g_h is not None:
        last[:, :size] += g_h[0]
    if g_c is not None:
        last[:, size:] = g_c[0]
    gi = linear(x, w_ih, b_ih)
    dgi, dh0, dc0, dw_hh, db_hh, _ = _rec._fast_vjp(g_states, states, gi, h0, c0, w_hh, b_hh, None, reverse)
    dx, dw_ih, db_ih = _input_grads(dgi, x, w_ih, b_ih)
    return dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0


def _input_grads(dgi: Any, x: Any, w_ih: Any, b_ih: Any) -> tuple[Any, Any, Any]:
    """x's, w_ih's and b_ih's gradients from the gradient of ``x W_ih^T + b_ih`` (raw torch or tg.Tensor)."""
    flat = dgi.reshape(-1, dgi.shape[-1])
    return dgi @ w_ih, flat.mT @ x.reshape(-1, x.shape[-1]), (None if b_ih is None else flat.sum(0))


def _vjp(g: tuple, out: tuple, x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any,
         reverse: bool = False, batch_first: bool = False) -> tuple[Any, ...]:  # fmt: skip
    g_out, g_h, g_c = (_zeros(o) if gk is None else gk for gk, o in zip(g, out))
    if batch_first:
        dx, *grads = _vjp((g_out.transpose(0, 1), g_h, g_c), out, x.transpose(0, 1), w_ih, w_hh, b_ih, b_hh, h0, c0,
                          reverse)  # fmt: skip
        return dx.transpose(0, 1), *grads
    # every step's cell state again, as a recorded function of the inputs: lstm_recurrence on the projection
    steps = x.shape[0]
    gi = linear(x, w_ih, b_ih)
    states = _rec.lstm_recurrence(gi, h0, c0, w_hh, b_hh, reverse=reverse)
    # h_n is the last step's h: its cotangent joins that step's; c_n's is the last step's c's
    before = [_zeros(g_h, steps - 1)] if steps > 1 else []
    g_last = cat([g_h, g_c], -1)
    g_states = cat([g_out, g_out * 0], -1) + cat([g_last, *before] if reverse else [*before, g_last])
    dgi, dh0, dc0, dw_hh, db_hh, _ = _rec._vjp(g_states, states, gi, h0, c0, w_hh, b_hh, None, reverse)
    dx, dw_ih, db_ih = _input_grads(dgi, x, w_ih, b_ih)
    return dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0


def _zeros(like: Any, rows: int | None = None) -> Tensor:
    """A constant of zeros with ``like``'s shape (``rows`` rows and twice its width: a stretch of [h, c] states)."""
    shape = tuple(like.shape) if rows is None else (rows, *like.shape[1:-1], 2 * like.shape[-1])
    return Tensor(torch.zeros(shape, dtype=like.dtype, device=like.device))


_lstm_layer = primitive(
    "lstm_layer",
    _forward,
    _vjp,
    "lstm_layer(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, batch_first): one LSTM layer over the sequence x "
    "(T, N, I), or (N, T, I) with batch_first: (every step's h (T, N, H) (batch_first: (N, T, H)), h_n, c_n "
    "(1, N, H)), one record; oneDNN's kernels where they run.",
    fast_vjp=_fast_vjp,
    saves=("inputs", "output"),  # and oneDNN's workspace (or the loop's states) as the residual
    residuals=_residuals,
    multi_output=True,
    unused_cotangents="none",
)


def lstm_layer(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any, reverse: bool = False,
               batch_first: bool = False) -> Any:  # fmt: skip
    """One LSTM layer over a sequence as one record, torch's i, f, g, o gates: ``(output, h_n, c_n)``.

    ``x`` is (T, N, I), ``w_ih`` (4H, I), ``w_hh`` (4H, H), ``b_ih`` and ``b_hh`` (4H,) or None,
    ``h0`` and ``c0`` (N, H). ``output`` (T, N, H) holds the hidden state after each step, ``h_n``
    and ``c_n`` (1, N, H) the hidden and cell state after the last one (one layer's part of torch's
    ``(h_n, c_n)``); with ``reverse`` the steps run from the last position to the first (row t is
    then the state after positions T-1 .. t, and the final states those after position 0). With
    ``batch_first``, ``x`` is (N, T, I) and ``output`` (N, T, H), a transposed view, as torch's
    batch-first LSTM output. On CPU in float32 this runs oneDNN's fused layer, as torch's LSTM does.
    """
    xs, wi, wh, h, c = raw(x), raw(w_ih), raw(w_hh), raw(h0), raw(c0)
    size = h.shape[-1] if h.dim() == 2 else -1
    steps, batch = (1, 0) if batch_first else (0, 1)
    ok = xs.dim() == 3 and xs.shape[steps] > 0 and h.dim() == 2 and tuple(c.shape) == tuple(h.shape)
    ok = ok and h.shape[0] == xs.shape[batch] and tuple(wi.shape) == (4 * size, xs.shape[-1])
    ok = ok and tuple(wh.shape) == (4 * size, size)
    ok = ok and all(b is None or tuple(raw(b).shape) == (4 * size,) for b in (b_ih, b_hh))
    if not ok:
        names = ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0")
        given = zip(names, (x, w_ih, w_hh, b_ih, b_hh, h0, c0))
        shapes = ", ".join(f"{n} {tuple(raw(t).shape)}" for n, t in given if t is not None)
        raise ShapeError(
            f"lstm_layer: expected x {'(N, T, I)' if batch_first else '(T, N, I)'} with T >= 1, w_ih (4H, I), "
            f"w_hh (4H, H), b_ih and b_hh (4H,) or None, h0 and c0 (N, H); got {shapes} (called at {call_site()})"
        )
    return _lstm_layer(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse=reverse, batch_first=batch_first)
