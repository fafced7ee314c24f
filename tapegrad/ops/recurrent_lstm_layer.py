"""lstm_layer: a whole LSTM layer (input projection and time loop) as one record on oneDNN's kernels.

On CPU in float32 (and bfloat16), with oneDNN available and enabled, the forward is aten's
``mkldnn_rnn_layer`` and the first-order VJP ``mkldnn_rnn_layer_backward``, the kernels torch's own
``nn.LSTM`` runs there; the kernel's workspace is kept as a residual. Elsewhere (float64, no oneDNN)
the forward is `lstm_recurrence`'s step loop on raw torch, whose every-step states are kept as the
residual for its fast rule. The reference VJP, in tapegrad ops through `lstm_recurrence`'s
reference rule, serves higher order. The one output holds every step's ``h`` and, after them, the
final cell state: (T + 1, N, H).
"""

from __future__ import annotations

from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor

from ..engine.errors import ShapeError, call_site
from ..engine.primitives import primitive
from . import recurrent_lstm as _rec
from ._operands import raw
from .linalg import linear
from .shape import cat

__all__ = ["lstm_layer"]

_A = torch.ops.aten
_LAYER = _A.mkldnn_rnn_layer.default
_LAYER_BACKWARD = _A.mkldnn_rnn_layer_backward.default
_LSTM_MODE = 2  # oneDNN's mode number for the LSTM (torch's ``mkldnn_rnn`` uses the same)
_KERNEL_DTYPES = (torch.float32, torch.bfloat16)


def _on_kernel(x: torch.Tensor) -> bool:
    """Whether oneDNN's layer kernel runs ``x``: the conditions torch's own LSTM checks (no projection here).

    Not on fake tensors (a step captured for inductor): torch's meta function gives the workspace no
    bytes, so the compiled step would fail on the real one; the loop's kernels compile instead."""
    return (
        x.dtype in _KERNEL_DTYPES
        and x.device.type == "cpu"
        and x.numel() > 0
        and torch.backends.mkldnn.is_available()
        and bool(torch._C._get_mkldnn_enabled())
        and not isinstance(x, FakeTensor)
    )


def _biases(w_hh: torch.Tensor, b_ih: torch.Tensor | None, b_hh: torch.Tensor | None) -> tuple[Any, Any]:
    zeros = None if b_ih is not None and b_hh is not None else w_hh.new_zeros(w_hh.shape[0])
    return (zeros if b_ih is None else b_ih), (zeros if b_hh is None else b_hh)


def _kernel(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any, reverse: bool,
            train: bool) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(the output (T + 1, N, H), oneDNN's workspace) from ``mkldnn_rnn_layer``."""
    bi, bh = _biases(w_hh, b_ih, b_hh)
    has_bias = b_ih is not None or b_hh is not None
    # the kernel reads its operands as dense row-major memory: a strided view would be read wrongly
    hs, _, cy, ws = _LAYER(
        x.contiguous(), w_ih.contiguous(), w_hh.contiguous(), bi.contiguous(), bh.contiguous(),
        h0.contiguous(), c0.contiguous(), reverse, [], _LSTM_MODE, h0.shape[-1], 1, has_bias, False, False, train,
    )  # fmt: skip
    return torch.cat([hs, cy.unsqueeze(0)]), ws


def _loop(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any, reverse: bool) -> tuple[Any, Any]:
    """(the output (T + 1, N, H), every step's [h, c] (T, N, 2H)) from `lstm_recurrence`'s step loop."""
    states = _rec._forward(linear(x, w_ih, b_ih), h0, c0, w_hh, b_hh, None, reverse)
    size = h0.shape[-1]
    return torch.cat([states[..., :size], states[0 if reverse else -1, None, :, size:]]), states


def _forward(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor | None,
             b_hh: torch.Tensor | None, h0: torch.Tensor, c0: torch.Tensor, reverse: bool = False,
             batch_first: bool = False) -> torch.Tensor:  # fmt: skip
    if batch_first:  # the time-major layer on views: the kernel's copy of x is its only copy (as torch's)
        return _forward(x.transpose(0, 1), w_ih, w_hh, b_ih, b_hh, h0, c0, reverse).transpose(0, 1)
    if _on_kernel(x):
        return _kernel(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, False)[0]
    return _loop(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse)[0]


def _residuals(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor | None,
               b_hh: torch.Tensor | None, h0: torch.Tensor, c0: torch.Tensor, reverse: bool = False,
               batch_first: bool = False) -> tuple[torch.Tensor, tuple[torch.Tensor]]:  # fmt: skip
    """The output and what the fast rule reuses: oneDNN's workspace (bytes), or the loop's every-step states."""
    if batch_first:
        out, residuals = _residuals(x.transpose(0, 1), w_ih, w_hh, b_ih, b_hh, h0, c0, reverse)
        return out.transpose(0, 1), residuals
    out, kept = (_kernel(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, True) if _on_kernel(x)
                 else _loop(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse))  # fmt: skip
    return out, (kept,)


def _fast_vjp(g: torch.Tensor, out: torch.Tensor, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
              b_ih: torch.Tensor | None, b_hh: torch.Tensor | None, h0: torch.Tensor, c0: torch.Tensor,
              *saved: torch.Tensor, reverse: bool = False, batch_first: bool = False) -> tuple[Any, ...]:  # fmt: skip
    if batch_first:  # the time-major rule on views; x's gradient back to (N, T, I)
        t = (g.transpose(0, 1), out.transpose(0, 1), x.transpose(0, 1))
        dx, *grads = _fast_vjp(*t, w_ih, w_hh, b_ih, b_hh, h0, c0, *saved, reverse=reverse)
        return dx.transpose(0, 1), *grads
    steps, size = x.shape[0], h0.shape[-1]
    kept = saved[0] if saved else None  # none from a record that keeps everything (tg.trace's)
    if kept is None and _on_kernel(x) or kept is not None and kept.dtype == torch.uint8:  # oneDNN's workspace
        ws = _kernel(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, True)[1] if kept is None else kept
        bi, bh = _biases(w_hh, b_ih, b_hh)
        hs = out[:steps].contiguous()  # (a no-op on the forward's own output)
        dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 = _LAYER_BACKWARD(
            x.contiguous(), w_ih.contiguous(), w_hh.contiguous(), bi.contiguous(), bh.contiguous(), h0.contiguous(),
            c0.contiguous(), hs, hs[0 if reverse else -1], out[steps].contiguous(), g[:steps].contiguous(), None,
            g[steps].contiguous(), reverse, _LSTM_MODE, size, 1, b_ih is not None or b_hh is not None, True, False,
            [], False, ws,
        )  # fmt: skip
        return dx, dw_ih, dw_hh, (None if b_ih is None else db_ih), (None if b_hh is None else db_hh), dh0, dc0
    states = _loop(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse)[1] if kept is None else kept
    g_states = torch.zeros_like(states)
    g_states[..., :size] = g[:steps]
    g_states[0 if reverse else -1, :, size:] = g[steps]
    gi = linear(x, w_ih, b_ih)
    dgi, dh0, dc0, dw_hh, db_hh, _ = _rec._fast_vjp(g_states, states, gi, h0, c0, w_hh, b_hh, None, reverse)
    dx, dw_ih, db_ih = _input_grads(dgi, x, w_ih, b_ih)
    return dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0


def _input_grads(dgi: Any, x: Any, w_ih: Any, b_ih: Any) -> tuple[Any, Any, Any]:
    """x's, w_ih's and b_ih's gradients from the gradient of ``x W_ih^T + b_ih`` (raw torch or tg.Tensor)."""
    flat = dgi.reshape(-1, dgi.shape[-1])
    return dgi @ w_ih, flat.mT @ x.reshape(-1, x.shape[-1]), (None if b_ih is None else flat.sum(0))


def _vjp(g: Any, out: Any, x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any,
         reverse: bool = False, batch_first: bool = False) -> tuple[Any, ...]:  # fmt: skip
    if batch_first:
        dx, *grads = _vjp(g.transpose(0, 1), out.transpose(0, 1), x.transpose(0, 1), w_ih, w_hh, b_ih, b_hh, h0, c0,
                          reverse)  # fmt: skip
        return dx.transpose(0, 1), *grads
    # every step's cell state again, as a recorded function of the inputs: lstm_recurrence on the projection
    steps = x.shape[0]
    gi = linear(x, w_ih, b_ih)
    states = _rec.lstm_recurrence(gi, h0, c0, w_hh, b_hh, reverse=reverse)
    g_c = [g[steps:], (g[:1] * 0).expand(steps - 1, -1, -1)] if steps > 1 else [g[steps:]]
    g_states = cat([g[:steps], cat(g_c[::-1] if not reverse else g_c)], -1)
    dgi, dh0, dc0, dw_hh, db_hh, _ = _rec._vjp(g_states, states, gi, h0, c0, w_hh, b_hh, None, reverse)
    dx, dw_ih, db_ih = _input_grads(dgi, x, w_ih, b_ih)
    return dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0


_lstm_layer = primitive(
    "lstm_layer",
    _forward,
    _vjp,
    "lstm_layer(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, batch_first): one LSTM layer over the sequence x "
    "(T, N, I), or (N, T, I) with batch_first: every step's h, then the final c, as (T + 1, N, H) (batch_first: "
    "(N, T + 1, H)); oneDNN's kernels where they run.",
    fast_vjp=_fast_vjp,
    saves=("inputs", "output"),  # and oneDNN's workspace (or the loop's states) as the residual
    residuals=_residuals,
)


def lstm_layer(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, h0: Any, c0: Any, reverse: bool = False,
               batch_first: bool = False) -> Any:  # fmt: skip
    """One LSTM layer over a sequence as one record, torch's i, f, g, o gates: (T + 1, N, H).

    ``x`` is (T, N, I), ``w_ih`` (4H, I), ``w_hh`` (4H, H), ``b_ih`` and ``b_hh`` (4H,) or None,
    ``h0`` and ``c0`` (N, H). The result's first T rows are the hidden state after each step, its
    last row the cell state after the last step; with ``reverse`` the steps run from the last
    position to the first (row t is then the state after positions T-1 .. t, and row T the cell
    state after position 0). With ``batch_first``, ``x`` is (N, T, I) and the result (N, T + 1, H),
    a transposed view, as torch's batch-first LSTM output. On CPU in float32 this runs oneDNN's
    fused layer, as torch's LSTM does.
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
