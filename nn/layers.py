"""Layers: `Linear` (the fused `tg.linear` primitive), `Sequential` and the activations."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, overload

import torch

from tapegrad.engine.errors import ShapeError, call_site
from tapegrad.engine.state import current
from tapegrad.engine.tensors import Tensor
from tapegrad.ops import linear, relu, sigmoid, tanh
from tapegrad.ops.fused_linear import linear_chain

from . import init as _init
from ._where import layer_name
from .module import Module, Parameter
from .validation import check_int, tensor_arg

__all__ = ["Linear", "Sequential", "ReLU", "Tanh", "Sigmoid", "as_tensor"]


def as_tensor(x: Any, owner: str | None = None, name: str = "input") -> Tensor:
    """A tg.Tensor for a tg.Tensor (itself), a torch.Tensor (shared) or array-like data (copied).

    Anything else is a `TypeError` (or, for a ragged list, a `ShapeError`) naming ``owner`` (by
    default the layer being run, '0 (Conv1d)') and the argument ``name``.
    """
    if isinstance(x, Tensor):
        return x
    return tensor_arg(owner or layer_name("as_tensor"), name, x)


class Linear(Module):
    """``y = x @ weight.T + bias`` with weight of shape (out_features, in_features), as torch.

    ``init`` picks the initialisation: ``"default"`` is torch's (kaiming_uniform with
    a=sqrt(5), bias uniform in +-1/sqrt(in_features)); ``"xavier"`` is Glorot normal with
    ``gain`` and zero bias; ``"he"`` is He normal for ReLU, times ``gain``, with
    zero bias; a callable is called with the weight and fills it in place (bias zero).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str | Callable[[Parameter], Any] = "default",
        gain: float = 1.0,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int("Linear", "in_features", in_features, low=0)
        self.out_features = check_int("Linear", "out_features", out_features, low=0)
        self.init = init
        self.gain = gain
        self.weight = Parameter(torch.empty((out_features, in_features), device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(torch.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights (and bias) with this layer's ``init``."""
        init, w, b = self.init, self.weight, self.bias
        if init == "default":
            _init.kaiming_uniform_(w, a=math.sqrt(5))
            if b is not None:
                bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
                _init.uniform_(b, -bound, bound)
            return
        if init == "xavier":
            _init.xavier_normal_(w, gain=self.gain)
        elif init == "he":
            _init.kaiming_normal_(w, nonlinearity="relu")
            w.data.mul_(self.gain)
        elif callable(init):
            init(w)
        else:
            raise ValueError(f"Linear: init must be 'default', 'xavier', 'he' or a callable, got {init!r}")
        if b is not None:
            _init.zeros_(b)

    def forward(self, x: Any) -> Tensor:
        """Apply the affine map to the last dimension of ``x`` (a tg or torch tensor)."""
        return self._affine(x, linear)

    def _affine(self, x: Any, op: Any) -> Tensor:
        """``op(x, weight, bias)`` after the input checks: `linear`, or linear fused with an activation."""
        if not isinstance(x, Tensor):
            x = as_tensor(x, "Linear")
        shape = x.data.shape
        width = shape[-1] if shape else None
        if width != self.in_features:
            scope = current().scope
            where = repr(scope) if scope is not None else "Linear"  # '2 (Linear)', like every error
            raise ShapeError(
                f"{where} expects inputs with {self.in_features} features in the last dimension, got "
                f"{width} (input shape {tuple(x.shape)}), called at {call_site()}"
            )
        params = self._parameters  # one dict lookup instead of two Module.__getattr__ calls
        bias = params.get("bias")
        if bias is None:
            return op(x, params["weight"])
        return op(x, params["weight"], bias)

    def extra_repr(self) -> str:
        """``in_features=2, out_features=25, bias=True``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Sequential(Module):
    """Modules applied one after the other; children are named "0", "1", ... (or by an OrderedDict)."""

    @overload
    def __init__(self, *modules: Module, fuse: bool = False) -> None: ...
    @overload
    def __init__(self, modules: OrderedDict[str, Module], /, *, fuse: bool = False) -> None: ...
    def __init__(self, *modules: Any, fuse: bool = False) -> None:
        super().__init__()
        self.fuse = fuse  # opt-in (tapegrad only): Linear + ReLU/Tanh/Sigmoid as one record
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x: Any) -> Tensor:
        """Feed ``x`` through every child in order.

        With ``fuse=True``, each run of library `Linear` layers, each followed by a library ReLU, Tanh or
        Sigmoid or by nothing, runs as one ``linear_chain`` record in this container's scope: the same
        values and gradients, bit for bit, one record and no module calls for the run. A child with
        hooks, a replaced ``forward`` or a subclass of its own breaks the run and is called as usual;
        a run of one Linear alone is called as usual; so is a run whose fused forward fails (the layers
        are then called one by one, and the one at fault raises its own error).
        """
        if not self.fuse:
            for m in self._modules.values():
                x = m(x)
            return x
        run: list[Module] = []  # the modules of the chain being gathered
        tensors: list[Any] = []  # its weights and biases, in linear_chain's order
        acts: list[str | None] = []  # its activations, one per Linear
        for m in self._modules.values():
            if not m._hooked and "forward" not in m.__dict__:
                cls = m.__class__
                if cls is Linear:
                    params = m._parameters
                    run.append(m)
                    tensors += (params["weight"], params.get("bias"))
                    acts.append(None)
                    continue
                act = _ACTIVATIONS.get(cls)
                if act is not None and acts and acts[-1] is None:  # a Linear waits for its activation
                    run.append(m)
                    acts[-1] = act
                    continue
            if run:
                x = _chain(run, tensors, acts, x)
                run, tensors, acts = [], [], []
            x = m(x)
        return _chain(run, tensors, acts, x) if run else x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Module:
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        try:
            return items[idx][1]
        except IndexError:
            raise IndexError(f"Sequential index {idx} out of range for {len(items)} modules") from None

    def append(self, module: Module) -> Sequential:
        """Add a module at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self


class ReLU(Module):
    """max(x, 0) elementwise."""

    def forward(self, x: Any) -> Tensor:
        """Apply relu."""
        return relu(x if isinstance(x, Tensor) else as_tensor(x, "ReLU"))


class Tanh(Module):
    """tanh elementwise."""

    def forward(self, x: Any) -> Tensor:
        """Apply tanh."""
        return tanh(x if isinstance(x, Tensor) else as_tensor(x, "Tanh"))


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise."""

    def forward(self, x: Any) -> Tensor:
        """Apply the logistic sigmoid."""
        return sigmoid(x if isinstance(x, Tensor) else as_tensor(x, "Sigmoid"))


# the activation modules nn.Sequential fuses into the Linear before them (`linear_chain`'s activations)
_ACTIVATIONS: dict[type, str] = {ReLU: "relu", Tanh: "tanh", Sigmoid: "sigmoid"}


def _chain(run: list[Module], tensors: list[Any], acts: list[str | None], x: Any) -> Any:
    """``x`` through the modules of ``run``: one `linear_chain` record, or each module called when the run
    is one Linear alone or the fused forward refuses ``x`` (the layer at fault then raises its own error)."""
    if len(run) > 1:
        try:
            x_ = x if isinstance(x, Tensor) else as_tensor(x, "Sequential")  # as Linear takes torch tensors
            return linear_chain(x_, *tensors, activations=tuple(acts))
        except (ValueError, TypeError):  # a shape, dtype or device error: raised below by the layer at fault
            pass
    for m in run:
        x = m(x)
    return x
