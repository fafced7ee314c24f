"""linear followed by relu, tanh or sigmoid as one record (``nn.Sequential`` fuses ``Linear`` + activation).

Each fused primitive runs the two primitives' own forwards and VJP rules in the same order, so its
output and gradients are those of the two records bit for bit; it saves what they save together
(the input and weight, and the activation's output), not the pre-activation in between.
"""

from __future__ import annotations

from typing import Any

import torch

from ..engine.primitives import Primitive, primitive
from . import _recycle
from .elementwise import relu, sigmoid, tanh
from .linalg import linear

__all__: list[str] = []  # reached through nn.Sequential, by name through FUSED_WITH_LINEAR


def _fuse(act: Primitive) -> Primitive:
    linear_forward, act_forward = linear.forward, act.forward
    assert act.vjps is not None and linear.vjps is not None and linear.fast_vjps is not None
    (act_fast,) = act.first_order[1] or ()
    (act_reference,) = act.vjps
    linear_fast, linear_reference = linear.fast_vjps, linear.vjps

    def forward(x: Any, weight: Any, bias: Any = None) -> Any:
        return act_forward(linear_forward(x, weight, bias))

    def rule(act_rule: Any, linear_rules: Any) -> Any:
        def vjp(g: Any, out: Any, x: Any, weight: Any, bias: Any = None) -> tuple[Any, ...]:
            gz = act_rule(g, out, None)  # the activation's rule reads its output, not its input
            gx = linear_rules[0](gz, None, x, weight, bias)
            gw = linear_rules[1](gz, None, x, weight, bias)
            return (gx, gw) if bias is None else (gx, gw, linear_rules[2](gz, None, x, weight, bias))

        return vjp

    general = rule(act_fast, linear_fast)

    def fast(g: Any, out: Any, x: Any, weight: Any, bias: Any = None) -> tuple[Any, ...]:
        # `general`, one call instead of five for an (N, in) batch: the walk runs it for every layer
        if x.ndim != 2 or bias is not None and bias.ndim != 1:
            return general(g, out, x, weight, bias)
        gz = act_fast(g, out, None)
        # linear's rules 0 and 1 (`_linear_weight_raw`); torch.mm is what `@` runs for 2-D operands, minus
        # matmul's dispatch (about a sixth of a small product's cost)
        gx, gw = torch.mm(gz, weight), _recycle.mm(gz.mT, x)
        return (gx, gw) if bias is None else (gx, gw, gz.sum(0))

    name = f"linear_{act.name}"
    return primitive(
        name,
        forward,
        rule(act_reference, linear_reference),
        f"{name}(x, weight, bias=None): {act.name}(x @ weight.T + bias), one record (nn.Sequential's "
        f"Linear followed by its activation module), the same values and gradients as the two ops.",
        fast_vjp=fast,
        saves=(0, 1, "output"),
    )


FUSED_WITH_LINEAR: dict[str, Primitive] = {f"linear_{p.name}": _fuse(p) for p in (relu, tanh, sigmoid)}
