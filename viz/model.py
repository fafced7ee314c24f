"""One call from a model and a batch to its picture: what the `tapegrad graph` command uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tapegrad.engine.tape import Tape
from tapegrad.engine.tensors import Tensor

from .backward import trace_backward
from .dot import draw
from .render import TapeDigraph

__all__ = ["draw_model"]


def draw_model(
    model: Callable[..., Any],
    x: Any,
    y: Any = None,
    loss_fn: Callable[..., Any] | None = None,
    backward: bool = False,
    **options: Any,
) -> TapeDigraph:
    """Run ``model(x)`` (and ``loss_fn(out, y)``) on a tape and draw it with `viz.draw`.

    With ``backward=True`` one replay gives every node its gradient norm (a non-scalar
    output is summed); parameters' ``.grad`` are left alone. ``options`` go to `viz.draw`.
    """
    if not isinstance(x, Tensor):
        x = Tensor(x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.get_default_dtype()))
    with Tape() as tape:
        out = model(x)
        if loss_fn is not None:
            out = loss_fn(out) if y is None else loss_fn(out, y)
    options.setdefault("params", model if hasattr(model, "named_parameters") else None)
    if not backward:
        return draw(tape, out, **options)
    seed = None if out.data.numel() == 1 else Tensor(torch.ones_like(out.data))
    return draw(trace_backward(tape, out, grad_output=seed), **options)
