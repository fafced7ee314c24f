"""oneDNN's LSTM layer kernels, which a step compiled by inductor calls as they are.

`lstm_layer` is aten's ``mkldnn_rnn_layer`` and `lstm_layer_backward` its ``mkldnn_rnn_layer_backward``,
with the arguments `tg.lstm_layer` always passes. On fake tensors (a step that ``tg.trace``'s inductor
executor captures) each calls an op of tapegrad's own (``tapegrad::lstm_layer``,
``tapegrad::lstm_layer_backward``), which inductor calls as it is, fusing the rest of the step around
it: aten's meta function gives the forward's workspace no bytes, so a compiled call of aten's kernel
would fail on the real one (the fake here gives it its real size), and inductor's C++ wrapper passes
aten's backward a None workspace.
"""

from __future__ import annotations

import functools

import torch
from torch._subclasses.fake_tensor import FakeTensor, unset_fake_temporarily

__all__ = ["lstm_layer", "lstm_layer_backward"]

T = torch.Tensor
_A = torch.ops.aten
_LAYER = _A.mkldnn_rnn_layer.default._op  # the C++ ops, not their Python OpOverload.__call__
_LAYER_BACKWARD = _A.mkldnn_rnn_layer_backward.default._op
_set_grad = torch._C._set_grad_enabled  # (torch.enable_grad's Python context manager costs more)
_LSTM_MODE = 2  # oneDNN's mode number for the LSTM (torch's ``mkldnn_rnn`` uses the same)


def lstm_layer(x: T, w_ih: T, w_hh: T, b_ih: T, b_hh: T, h0: T, c0: T, reverse: bool, has_bias: bool,
               train: bool) -> tuple[T, T, T, T]:  # fmt: skip
    """``mkldnn_rnn_layer`` on dense operands: (every h (T, N, H), h_n, c_n (N, H), workspace)."""
    if isinstance(x, FakeTensor):
        return _OPS.lstm_layer.default(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, has_bias, train)
    return _aten_layer(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, has_bias, train)


def lstm_layer_backward(x: T, w_ih: T, w_hh: T, b_ih: T, b_hh: T, h0: T, c0: T, hs: T, hy: T, cy: T,
                        g_out: T | None, g_h: T | None, g_c: T | None, ws: T, reverse: bool,
                        has_bias: bool) -> tuple[T, T, T, T, T, T, T]:  # fmt: skip
    """``mkldnn_rnn_layer_backward`` on dense operands: the gradients of x, w_ih, w_hh, b_ih, b_hh, h0, c0."""
    kernel = _OPS.lstm_layer_backward.default if isinstance(x, FakeTensor) else _aten_backward
    return kernel(x, w_ih, w_hh, b_ih, b_hh, h0, c0, hs, hy, cy, g_out, g_h, g_c, ws, reverse, has_bias)


def _aten_layer(x: T, w_ih: T, w_hh: T, b_ih: T, b_hh: T, h0: T, c0: T, reverse: bool, has_bias: bool,
                train: bool) -> tuple[T, T, T, T]:  # fmt: skip
    return _LAYER(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, [], _LSTM_MODE, h0.shape[-1], 1, has_bias, False,
                  False, train)  # fmt: skip


def _aten_backward(x: T, w_ih: T, w_hh: T, b_ih: T, b_hh: T, h0: T, c0: T, hs: T, hy: T, cy: T, g_out: T | None,
                   g_h: T | None, g_c: T | None, ws: T, reverse: bool,
                   has_bias: bool) -> tuple[T, T, T, T, T, T, T]:  # fmt: skip
    return _LAYER_BACKWARD(x, w_ih, w_hh, b_ih, b_hh, h0, c0, hs, hy, cy, g_out, g_h, g_c, reverse, _LSTM_MODE,
                           h0.shape[-1], 1, has_bias, True, False, [], False, ws)  # fmt: skip


def _trained_layer(*args: T | bool) -> tuple[T, T, T, T]:
    # the kernel writes its workspace only under torch's grad mode, which a compiled step runs without
    on = torch.is_grad_enabled()
    _set_grad(True)
    try:
        return _aten_layer(*args)  # type: ignore[arg-type]
    finally:
        _set_grad(on)


def _fake_layer(x: T, w_ih: T, w_hh: T, b_ih: T, b_hh: T, h0: T, c0: T, reverse: bool, has_bias: bool,
                train: bool) -> tuple[T, T, T, T]:  # fmt: skip
    hs, hy, cy, _ = _aten_layer(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, has_bias, train)
    size = _workspace_bytes(tuple(x.shape), h0.shape[-1], x.dtype, reverse, has_bias, train)
    return hs, hy, cy, x.new_empty(size, dtype=torch.uint8)


@functools.cache
def _workspace_bytes(shape: tuple[int, ...], size: int, dtype: torch.dtype, reverse: bool, has_bias: bool,
                     train: bool) -> int:  # fmt: skip
    """The bytes of oneDNN's workspace for a layer of these sizes: the kernel run once on real zeros."""
    with unset_fake_temporarily():
        x, h = torch.zeros(shape, dtype=dtype), torch.zeros(shape[1], size, dtype=dtype)
        w_ih, w_hh = torch.zeros(4 * size, shape[-1], dtype=dtype), torch.zeros(4 * size, size, dtype=dtype)
        b = torch.zeros(4 * size, dtype=dtype)
        return _trained_layer(x, w_ih, w_hh, b, b, h, h, reverse, has_bias, train)[3].numel()


# registered as plain ops (not torch.library.custom_op, whose Python wrapper costs about 13 us a call); each
# fake is the kernel's own meta function but for the workspace's size
_LIB = torch.library.Library("tapegrad", "FRAGMENT")
_LSTM_ARGS = "Tensor x, Tensor w_ih, Tensor w_hh, Tensor b_ih, Tensor b_hh, Tensor h0, Tensor c0"
_LIB.define(f"lstm_layer({_LSTM_ARGS}, bool reverse, bool has_bias, bool train) -> (Tensor, Tensor, Tensor, Tensor)")
_LIB.define(
    f"lstm_layer_backward({_LSTM_ARGS}, Tensor hs, Tensor hy, Tensor cy, Tensor? g_out, Tensor? g_h, Tensor? g_c, "
    "Tensor ws, bool reverse, bool has_bias) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)"
)
for _name, _kernel, _fake in (
    ("lstm_layer", _trained_layer, _fake_layer),
    ("lstm_layer_backward", _aten_backward, _aten_backward),
):
    _LIB.impl(_name, _kernel, "CPU")
    torch.library.register_fake(f"tapegrad::{_name}", _fake, lib=_LIB)
_OPS = torch.ops.tapegrad
