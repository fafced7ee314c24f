"""`RNN`, `GRU` and `LSTM`: stacked, optionally bidirectional recurrent layers with torch's arguments,
weight names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), gate order, shapes and initialisation."""

from __future__ import annotations

import math
from typing import Any

import torch

from tapegrad.engine.errors import ShapeError
from tapegrad.ops import cat, dropout, gru_recurrence, linear, lstm_layer, lstm_recurrence, rnn_recurrence

from . import init as _init
from ._where import called_at, layer_name
from .layers import as_tensor
from .module import Module, Parameter

__all__ = ["RNNBase", "RNN", "GRU", "LSTM"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


class RNNBase(Module):
    """The shared machinery: per layer and direction, ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    def __init__(
        self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
        batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
        device: Any = None, dtype: Any = None,
    ) -> None:  # fmt: skip
        super().__init__()
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
            )
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if not isinstance(proj_size, int) or proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        width = proj_size or hidden_size  # the hidden state's size (h is projected to proj_size)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else width * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes: list[tuple[int, ...]] = [(gate_size, layer_input), (gate_size, width)]
                names = [f"weight_ih{suffix}", f"weight_hh{suffix}"]
                if bias:
                    shapes += [(gate_size,), (gate_size,)]
                    names += [f"bias_ih{suffix}", f"bias_hh{suffix}"]
                if proj_size:
                    shapes.append((proj_size, hidden_size))
                    names.append(f"weight_hr{suffix}")
                for name, shape in zip(names, shapes):
                    self.register_parameter(name, Parameter(torch.empty(shape, **kw)))
                self._flat_weights_names.extend(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias uniform in ±1/sqrt(hidden_size), as torch."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            _init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, direction: int) -> tuple[Any, ...]:
        """(weight_ih, weight_hh, bias_ih, bias_hh, weight_hr) of one layer and direction, None where absent."""
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        get = self._parameters.get
        return tuple(get(f"{name}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"))

    def _check(self, x: Any) -> bool:
        if x.dim() not in (2, 3) or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{layer_name(type(self).__name__)}: expected input (L, N, {self.input_size}) "
                f"({'batch_first: (N, L, ...)' if self.batch_first else 'or (N, L, ...) with batch_first'}) "
                f"or unbatched (L, {self.input_size}), got {tuple(x.shape)}{called_at()}"
            )
        return x.dim() == 2

    def _initial(self, given: Any, x: Any, unbatched: bool, name: str, batch: int) -> Any:
        directions = 2 if self.bidirectional else 1
        size = self.proj_size if self.proj_size and name == "h_0" else self.hidden_size
        expected = (self.num_layers * directions, batch, size)
        if given is None:
            return torch.zeros(expected, dtype=x.dtype, device=x.device)
        h = as_tensor(given)
        h = h.unsqueeze(1) if unbatched else h
        if tuple(h.shape) != expected:
            shown = expected[:1] + expected[2:] if unbatched else expected
            raise ShapeError(
                f"{layer_name(type(self).__name__)}: expected {name} of shape {shown}, got {tuple(given.shape)}"
                f"{called_at()}"
            )
        return h

    def _batch_first_layers(self) -> bool:
        """Whether `_sequence` takes and gives the batch-first layout itself (else `_run` transposes)."""
        return False

    def _run(self, input: Any, states: list[Any]) -> tuple[Any, list[Any], bool]:
        """(output (L, N, D*H), or (N, L, D*H) with batch_first, final states per kind as (layers*D, N, H),
        unbatched)."""
        x = as_tensor(input)
        unbatched = self._check(x)
        if unbatched:
            x = x.unsqueeze(1)
        native = self.batch_first and not unbatched and self._batch_first_layers()
        if self.batch_first and not unbatched and not native:
            x = x.transpose(0, 1)
        batch = x.shape[0 if native else 1]
        init = [self._initial(s, x, unbatched, n, batch) for s, n in zip(states, ("h_0", "c_0"))]
        directions = 2 if self.bidirectional else 1
        finals: list[list[Any]] = [[] for _ in init]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                state = [s[layer * directions + direction] for s in init]
                seq, state = self._sequence(x, self._weights(layer, direction), state, direction == 1, native)
                outs.append(seq)
                for kind, s in zip(finals, state):
                    kind.append(s)
            x = outs[0] if directions == 1 else cat(outs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = dropout(x, self.dropout, training=True)
        if self.batch_first and not unbatched and not native:
            x = x.transpose(0, 1)
        return x, [kind[0] if len(kind) == 1 else cat(kind) for kind in finals], unbatched  # each (1, N, H)

    def _sequence(
        self, x: Any, weights: tuple[Any, ...], state: list[Any], reverse: bool, batch_first: bool
    ) -> tuple[Any, list[Any]]:
        """(every step's state (L, N, H), the final states, each (1, N, H)) of one layer and direction over
        its input ``x`` (L, N, I), with that layer's `_weights`: each kind's one-record recurrence primitive
        (``batch_first``, only where `_batch_first_layers` says so: ``x`` (N, L, I) gives (N, L, H))."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        """``10, 20, num_layers=2, batch_first=True`` (the options that differ from the defaults)."""
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


def _split_args(owner: str, args: tuple[Any, ...], kwargs: dict[str, Any], names: list[str]) -> dict[str, Any]:
    if len(args) > len(names):
        raise TypeError(f"{owner}() takes at most {len(names) + 2} positional arguments")
    options = dict(zip(names, args))
    for k in kwargs:
        if k in options:
            raise TypeError(f"{owner}() got multiple values for argument {k!r}")
    options.update(kwargs)
    return options


_OPTION_NAMES = ["num_layers", "bias", "batch_first", "dropout", "bidirectional"]


class RNN(RNNBase):
    """Elman RNN layers: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (``nonlinearity="relu"``
    for ReLU). Returns ``(output, h_n)`` as torch."""

    def __init__(self, input_size: int, hidden_size: int, *args: Any, **kwargs: Any) -> None:
        options = _split_args("RNN", args, kwargs, ["num_layers", "nonlinearity", *_OPTION_NAMES[1:]])
        nonlinearity = options.pop("nonlinearity", "tanh")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, **options)

    def _sequence(
        self, x: Any, weights: tuple[Any, ...], state: list[Any], reverse: bool, batch_first: bool
    ) -> tuple[Any, list[Any]]:
        w_ih, w_hh, b_ih, b_hh, _ = weights
        gi = linear(x, w_ih, b_ih)  # every time step's input projection at once
        seq = rnn_recurrence(gi, state[0], w_hh, b_hh, self.nonlinearity, reverse)  # the whole time loop: one record
        return seq, [seq[:1] if reverse else seq[-1:]]

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        """``(output, h_n)``: every step's top-layer state, and each layer's last state."""
        out, (h,), unbatched = self._run(input, [hx])
        return out.squeeze(1) if unbatched else out, h.squeeze(1) if unbatched else h


class GRU(RNNBase):
    """Gated recurrent unit layers with torch's reset, update, new gate order. Returns ``(output, h_n)``."""

    def __init__(self, input_size: int, hidden_size: int, *args: Any, **kwargs: Any) -> None:
        super().__init__("GRU", input_size, hidden_size, **_split_args("GRU", args, kwargs, _OPTION_NAMES))

    def _sequence(
        self, x: Any, weights: tuple[Any, ...], state: list[Any], reverse: bool, batch_first: bool
    ) -> tuple[Any, list[Any]]:
        w_ih, w_hh, b_ih, b_hh, _ = weights
        gi = linear(x, w_ih, b_ih)  # every time step's input projection at once
        seq = gru_recurrence(gi, state[0], w_hh, b_hh, reverse=reverse)  # the whole time loop: one record
        return seq, [seq[:1] if reverse else seq[-1:]]

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        """``(output, h_n)``: every step's top-layer state, and each layer's last state."""
        out, (h,), unbatched = self._run(input, [hx])
        return out.squeeze(1) if unbatched else out, h.squeeze(1) if unbatched else h


class LSTM(RNNBase):
    """Long short-term memory layers with torch's input, forget, cell, output gate order. Returns
    ``(output, (h_n, c_n))``."""

    def __init__(self, input_size: int, hidden_size: int, *args: Any, **kwargs: Any) -> None:
        options = _split_args("LSTM", args, kwargs, [*_OPTION_NAMES, "proj_size"])  # torch's positional order
        super().__init__("LSTM", input_size, hidden_size, **options)

    def _batch_first_layers(self) -> bool:
        return not self.proj_size  # lstm_layer reads and writes the batch-first layout itself

    def _sequence(
        self, x: Any, weights: tuple[Any, ...], state: list[Any], reverse: bool, batch_first: bool
    ) -> tuple[Any, list[Any]]:
        w_ih, w_hh, b_ih, b_hh, w_hr = weights
        if w_hr is None:  # the whole layer, input projection included, one record (oneDNN's kernels on CPU)
            out, h_n, c_n = lstm_layer(x, w_ih, w_hh, b_ih, b_hh, state[0], state[1], reverse, batch_first)
            return out, [h_n, c_n]
        # projected h (proj_size): torch runs its step loop too; the time loop is one record, [h, c] each step
        states = lstm_recurrence(linear(x, w_ih, b_ih), state[0], state[1], w_hh, b_hh, reverse, w_hr)
        size, last = self.proj_size, (states[:1] if reverse else states[-1:])
        return states[..., :size], [last[..., :size], last[..., size:]]

    def forward(self, input: Any, hx: tuple[Any, Any] | None = None) -> tuple[Any, tuple[Any, Any]]:
        """``(output, (h_n, c_n))``: every step's top-layer state, and each layer's last states."""
        h0, c0 = (None, None) if hx is None else hx
        out, (h, c), unbatched = self._run(input, [h0, c0])
        if unbatched:
            h, c = h.squeeze(1), c.squeeze(1)
        return out.squeeze(1) if unbatched else out, (h, c)
