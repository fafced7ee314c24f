"""One time step of the tanh/ReLU RNN, the GRU and the LSTM (torch's gate order), and the cell layers
`RNNCell`, `GRUCell`, `LSTMCell` built on them."""

from __future__ import annotations

import math
from typing import Any

import torch

from tapegrad.engine.errors import ShapeError
from tapegrad.ops import gru_recurrence, linear, lstm_recurrence, rnn_recurrence

from . import init as _init
from ._where import called_at, layer_name
from .layers import as_tensor
from .module import Module, Parameter

__all__ = ["rnn_step", "gru_step", "lstm_step", "RNNCell", "GRUCell", "LSTMCell"]


def rnn_step(gi: Any, h: Any, w_hh: Any, b_hh: Any, nonlinearity: str = "tanh") -> Any:
    """h' = act(gi + h W_hh^T + b_hh), where ``gi`` is the input's projection x W_ih^T + b_ih (one record)."""
    return rnn_recurrence(gi, h, w_hh, b_hh, nonlinearity)


def gru_step(gi: Any, h: Any, w_hh: Any, b_hh: Any) -> Any:
    """torch's GRU: r, z, n gates; n = tanh(gi_n + r * (h W_hn^T + b_hn)); h' = (1 - z) n + z h (one record)."""
    return gru_recurrence(gi, h, w_hh, b_hh)


def lstm_step(gi: Any, h: Any, c: Any, w_hh: Any, b_hh: Any) -> tuple[Any, Any]:
    """torch's LSTM: i, f, g, o gates; c' = f c + i g; h' = o tanh(c') (one record). Returns (h', c')."""
    states = lstm_recurrence(gi, h, c, w_hh, b_hh)
    size = h.shape[-1]
    return states[:, :size], states[:, size:]


class _CellBase(Module):
    _gates = 1
    bias_ih: Parameter | None  # registered in __init__, declared for type checkers
    bias_hh: Parameter | None

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight_ih = Parameter(torch.empty(self._gates * hidden_size, input_size, **kw))
        self.weight_hh = Parameter(torch.empty(self._gates * hidden_size, hidden_size, **kw))
        self.register_parameter("bias_ih", Parameter(torch.empty(self._gates * hidden_size, **kw)) if bias else None)
        self.register_parameter("bias_hh", Parameter(torch.empty(self._gates * hidden_size, **kw)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias uniform in ±1/sqrt(hidden_size), as torch."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            _init.uniform_(p, -bound, bound)

    def _prepare(self, input: Any, hx: Any) -> tuple[Any, Any, bool]:
        x = as_tensor(input)
        if x.dim() not in (1, 2) or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{layer_name(type(self).__name__)}: expected input (N, {self.input_size}) or ({self.input_size},), "
                f"got {tuple(x.shape)}{called_at()}"
            )
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
        if hx is None:
            hx = torch.zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
        else:
            hx = as_tensor(hx)
            hx = hx.unsqueeze(0) if unbatched else hx
        return linear(x, self.weight_ih, self.bias_ih), hx, unbatched

    def extra_repr(self) -> str:
        """``3, 5`` (and the options that differ from the defaults), as torch."""
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        nonlinearity = getattr(self, "nonlinearity", "tanh")  # RNNCell's
        if nonlinearity != "tanh":
            text += f", nonlinearity={nonlinearity}"
        return text


class RNNCell(_CellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or ReLU), one step, as torch's RNNCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None) -> None:  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r} (tanh or relu)")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Any:
        """The next hidden state, (N, hidden_size) or (hidden_size,)."""
        gi, h, unbatched = self._prepare(input, hx)
        out = rnn_step(gi, h, self.weight_hh, self.bias_hh, self.nonlinearity)
        return out.squeeze(0) if unbatched else out


class GRUCell(_CellBase):
    """One GRU step with torch's reset, update, new gate order and weights."""

    _gates = 3

    def forward(self, input: Any, hx: Any = None) -> Any:
        """The next hidden state, (N, hidden_size) or (hidden_size,)."""
        gi, h, unbatched = self._prepare(input, hx)
        out = gru_step(gi, h, self.weight_hh, self.bias_hh)
        return out.squeeze(0) if unbatched else out


class LSTMCell(_CellBase):
    """One LSTM step with torch's input, forget, cell, output gate order and weights."""

    _gates = 4

    def forward(self, input: Any, hx: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
        """The next ``(h, c)``, each (N, hidden_size) or (hidden_size,)."""
        h0, c0 = (None, None) if hx is None else hx
        gi, h, unbatched = self._prepare(input, h0)
        c = torch.zeros_like(h.data if hasattr(h, "data") else h) if c0 is None else as_tensor(c0)
        if unbatched and c0 is not None:
            c = c.unsqueeze(0)
        h1, c1 = lstm_step(gi, h, c, self.weight_hh, self.bias_hh)
        return (h1.squeeze(0), c1.squeeze(0)) if unbatched else (h1, c1)
